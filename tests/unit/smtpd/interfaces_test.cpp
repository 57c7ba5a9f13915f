// Interface groups (core/smtpd/interfaces.cpp): the default routes read from
// the text of /proc/net/route and /proc/net/ipv6_route (fixtures: a default
// route on eth0, none, IPv6 only, routes that reject or are down), and what
// `listen on` names resolve to or are told on this host.
#include <catch2/catch.hpp>

#include <algorithm>

#include "smtpd/interfaces.hpp"

using namespace postern::smtpd;

namespace {

const char* kRouteHeader =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT            \n";

// A default route through 192.0.2.1 on eth0, and eth0's own network.
const std::string kIpv4Default = std::string(kRouteHeader) +
                                 "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0          \n"
                                 "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0          \n";

// What the kernel prints with no IPv6 default: the local and multicast
// routes, and the unreachable ::/0 on lo it keeps (flags 00200200: reject).
const std::string kIpv6None =
    "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 "
    "00000100 00000001 00000000 00000001     eth0\n"
    "00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 "
    "00000000 00000004 00000000 80200001       lo\n"
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 "
    "ffffffff 00000001 00000000 00200200       lo\n";

// A default route through fd00::1 on ens3.
const std::string kIpv6Default =
    kIpv6None +
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 "
    "00000400 00000003 00000000 00000003     ens3\n";

bool has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

postern::config::Listener listener(const std::string& on) {
    postern::config::Listener l;
    l.on = on;
    return l;
}

}  // namespace

TEST_CASE("interfaces: the IPv4 default route's interface") {
    CHECK(ipv4_default_interfaces(kIpv4Default) == std::vector<std::string>{"eth0"});
}

TEST_CASE("interfaces: no IPv4 default route") {
    const std::string text = std::string(kRouteHeader) +
                             "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0          \n";
    CHECK(ipv4_default_interfaces(text).empty());
    CHECK(ipv4_default_interfaces(kRouteHeader).empty());
    CHECK(ipv4_default_interfaces("").empty());
    // A default route without its mask, or with a mask, is not one.
    CHECK(ipv4_default_interfaces(std::string(kRouteHeader) + "eth0\t00000000\t010200C0\t0003\t0\t0\t0\n").empty());
    CHECK(ipv4_default_interfaces(std::string(kRouteHeader) +
                                  "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t000000FF\t0\t0\t0\n")
              .empty());
}

TEST_CASE("interfaces: IPv4 default routes that are down or reject do not count, two interfaces both do") {
    const std::string text = std::string(kRouteHeader) +
                             "eth0\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n"     // not up
                             "eth1\t00000000\t00000000\t0201\t0\t0\t0\t00000000\t0\t0\t0\n"     // reject
                             "wlan0\t00000000\t010200C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"  // a second default
                             "eth2\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
                             "eth2\t00000000\t020200C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n";  // eth2 again
    CHECK(ipv4_default_interfaces(text) == std::vector<std::string>{"wlan0", "eth2"});
}

TEST_CASE("interfaces: IPv6 only: the default route's interface, and none beside the kernel's unreachable one") {
    CHECK(ipv6_default_interfaces(kIpv6Default) == std::vector<std::string>{"ens3"});
    CHECK(ipv6_default_interfaces(kIpv6None).empty());
    CHECK(ipv6_default_interfaces("").empty());
    // An IPv6-only host: its IPv4 table has no default.
    CHECK(ipv4_default_interfaces(kRouteHeader).empty());
}

TEST_CASE("interfaces: this host's loopback is found, and 'all' includes it") {
    const std::vector<Interface> all = interfaces();
    auto lo = std::find_if(all.begin(), all.end(), [](const Interface& i) { return i.name == "lo"; });
    REQUIRE(lo != all.end());
    CHECK(has(lo->addresses, "127.0.0.1"));
    CHECK(has(interface_target_addresses(listener("lo")), "127.0.0.1"));
    CHECK(has(interface_target_addresses(listener("all")), "127.0.0.1"));
    auto l = listener("all");
    l.family = postern::config::Listener::Family::Inet6;
    CHECK_FALSE(has(interface_target_addresses(l), "127.0.0.1"));
    // 'egress' is the default routes' interfaces: never lo here.
    CHECK_FALSE(has(interface_target_addresses(listener("egress")), "127.0.0.1"));
    CHECK(interface_target_addresses(listener("no-such-if0")).empty());
}

TEST_CASE("interfaces: the BSDs' names are told their Linux equivalent") {
    CHECK(interface_name_hint(listener("lo0")) ==
          "no interface 'lo0' on this host (the loopback interface's name on the BSDs); on Linux it is 'lo': "
          "listen on lo, or on localhost");
    CHECK(interface_name_hint(listener("lo1")) ==
          "no interface 'lo1' on this host (an extra loopback interface of the BSDs); Linux has one loopback "
          "interface, 'lo': listen on lo, or on an address of it");
    for (const char* name : {"em0", "vio0", "vmx1", "igb0", "vtnet0"}) {
        const std::string hint = interface_name_hint(listener(name));
        INFO(hint);
        CHECK(hint.starts_with("no interface '" + std::string(name) + "' on this host ("));
        CHECK(hint.find(" is a BSD network driver; Linux names interfaces otherwise, such as eth0 or enp1s0)") !=
              std::string::npos);
    }
    // Not BSD names: the caller's own message.
    for (const char* name : {"mx.example.org", "em", "0", "eth0x", "frob0"})
        CHECK(interface_name_hint(listener(name)).empty());
}
