// Interfaces and interface groups; see interfaces.hpp.
#include "smtpd/interfaces.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <memory>
#include <sstream>

namespace postern::smtpd {
namespace {

// Route flags (linux/route.h) as the two files print them, in hex.
constexpr unsigned long kRouteUp = 0x0001;
constexpr unsigned long kRouteReject = 0x0200;

std::string ip_text(const sockaddr* sa) {
    char buf[INET6_ADDRSTRLEN] = "";
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
    else inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
    return buf;
}

bool hex_number(const std::string& s, unsigned long& out) {
    if (s.empty() || s.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) return false;
    out = std::stoul(s, nullptr, 16);
    return true;
}

// A route that carries traffic: up, and not a reject (unreachable) route.
bool live(const std::string& flags_text) {
    unsigned long flags = 0;
    return hex_number(flags_text, flags) && (flags & kRouteUp) && !(flags & kRouteReject);
}

void add_once(std::vector<std::string>& names, const std::string& name) {
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
}

const Interface* find(const std::vector<Interface>& all, const std::string& name) {
    auto it = std::find_if(all.begin(), all.end(), [&](const Interface& i) { return i.name == name; });
    return it == all.end() ? nullptr : &*it;
}

bool family_ok(const config::Listener& l, const std::string& ip) {
    const bool v6 = ip.find(':') != std::string::npos;
    return l.family == config::Listener::Family::Any || (l.family == config::Listener::Family::Inet4 && !v6) ||
           (l.family == config::Listener::Family::Inet6 && v6);
}

std::vector<std::string> addresses_of(const config::Listener& l, const std::vector<Interface>& all,
                                      const std::vector<std::string>& names) {
    std::vector<std::string> out;
    for (const std::string& name : names)
        if (const Interface* i = find(all, name))
            for (const std::string& ip : i->addresses)
                if (family_ok(l, ip)) out.push_back(ip);
    return out;
}

std::string read_file(const char* path) {
    std::ifstream in(path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
    return out;
}

std::string q(const std::string& s) { return "'" + s + "'"; }

const char* family_word(const config::Listener& l) {
    return l.family == config::Listener::Family::Inet4   ? "IPv4 "
           : l.family == config::Listener::Family::Inet6 ? "IPv6 "
                                                         : "";
}

// "lo, eth0": the interfaces a listener could use.
std::string usable(const std::vector<Interface>& all) {
    std::vector<std::string> names;
    for (const Interface& i : all)
        if (!i.addresses.empty()) names.push_back(i.name);
    return names.empty() ? "none has an address" : join(names);
}

// Network card drivers of the BSDs, whose names ("em0", "vio0") an
// smtpd.conf copied from OpenBSD or FreeBSD may hold. Linux names the same
// cards eth0, enp1s0, ens3: there is no mapping from one to the other.
constexpr std::array<std::string_view, 36> kBsdDrivers = {
    "em",  "igb", "ix",  "ixl", "iavf", "ice", "re",  "rge",  "bge",  "bnxt", "bnx",   "vio",
    "vmx", "xnf", "hvn", "mcx", "aq",   "age", "alc", "ale",  "fxp",  "msk",  "nfe",   "sis",
    "vr",  "xl",  "iwm", "iwn", "iwx",  "ure", "axe", "axen", "cdce", "mue",  "vtnet", "hn"};

// "em0" -> "em": the driver part of a BSD interface name, "" if not one.
std::string_view driver_of(std::string_view name) {
    const std::size_t digits = name.find_first_of("0123456789");
    if (digits == 0 || digits == std::string_view::npos) return {};
    if (name.find_first_not_of("0123456789", digits) != std::string_view::npos) return {};
    return name.substr(0, digits);
}

std::string egress_hint(const config::Listener& l, const std::vector<Interface>& all) {
    const std::vector<std::string> egress = egress_interfaces();
    if (egress.empty())
        return "no interface holds a default route here, so the group 'egress' (the interfaces of the IPv4 and "
               "IPv6 default routes) is empty; add a default route before posternd starts, or name an interface "
               "(here: " +
               usable(all) + ")";
    return "the interfaces of the default route (" + join(egress) + ") have no " + family_word(l) +
           "address; give one an address before posternd starts, or name an interface that has one (here: " +
           usable(all) + ")";
}

std::string bsd_name_hint(const std::string& name, const std::vector<Interface>& all) {
    if (name == "lo0")
        return "no interface 'lo0' on this host (the loopback interface's name on the BSDs); on Linux it is "
               "'lo': listen on lo, or on localhost";
    const std::string_view driver = driver_of(name);
    if (driver == "lo")
        return "no interface " + q(name) +
               " on this host (an extra loopback interface of the BSDs); Linux has one loopback interface, 'lo': "
               "listen on lo, or on an address of it";
    if (std::find(kBsdDrivers.begin(), kBsdDrivers.end(), driver) == kBsdDrivers.end()) return {};
    std::vector<std::string> cards;
    for (const Interface& i : all)
        if (i.name != "lo" && !i.addresses.empty()) cards.push_back(i.name);
    std::string text = "no interface " + q(name) + " on this host (" + q(std::string(driver)) +
                       " is a BSD network driver; Linux names interfaces otherwise, such as eth0 or enp1s0)";
    if (cards.size() == 1) return text + ": here it is " + q(cards.front()) + ": listen on " + cards.front();
    return text + "; list this host's interfaces and their addresses with 'ip -brief address' (here: " + usable(all) +
           ")";
}

}  // namespace

std::vector<Interface> interfaces() {
    std::vector<Interface> out;
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0) return out;
    std::unique_ptr<ifaddrs, decltype(&freeifaddrs)> guard(list, freeifaddrs);
    for (ifaddrs* i = list; i; i = i->ifa_next) {
        auto it = std::find_if(out.begin(), out.end(), [&](const Interface& f) { return f.name == i->ifa_name; });
        if (it == out.end()) it = out.insert(out.end(), Interface{i->ifa_name, {}});
        if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6)) continue;
        if (i->ifa_addr->sa_family == AF_INET6 &&
            IN6_IS_ADDR_LINKLOCAL(&reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr))
            continue;
        it->addresses.push_back(ip_text(i->ifa_addr));
    }
    return out;
}

// Iface Destination Gateway Flags RefCnt Use Metric Mask ...; a header line first.
std::vector<std::string> ipv4_default_interfaces(std::string_view proc_net_route) {
    std::vector<std::string> out;
    std::istringstream lines{std::string(proc_net_route)};
    std::string line;
    std::getline(lines, line);  // the header
    while (std::getline(lines, line)) {
        std::istringstream in(line);
        std::string iface, dest, gateway, flags, refcnt, use, metric, mask;
        if (in >> iface >> dest >> gateway >> flags >> refcnt >> use >> metric >> mask && dest == "00000000" &&
            mask == "00000000" && live(flags))
            add_once(out, iface);
    }
    return out;
}

// Destination, its prefix length, source, its prefix length, next hop,
// metric, reference count, use, flags, interface; no header line.
std::vector<std::string> ipv6_default_interfaces(std::string_view proc_net_ipv6_route) {
    std::vector<std::string> out;
    std::istringstream lines{std::string(proc_net_ipv6_route)};
    for (std::string line; std::getline(lines, line);) {
        std::istringstream in(line);
        std::string dest, dest_len, src, src_len, next_hop, metric, refcnt, use, flags, iface;
        if (in >> dest >> dest_len >> src >> src_len >> next_hop >> metric >> refcnt >> use >> flags >> iface &&
            dest == std::string(32, '0') && dest_len == "00" && live(flags))
            add_once(out, iface);
    }
    return out;
}

std::vector<std::string> egress_interfaces() {
    std::vector<std::string> out = ipv4_default_interfaces(read_file("/proc/net/route"));
    for (const std::string& name : ipv6_default_interfaces(read_file("/proc/net/ipv6_route"))) add_once(out, name);
    return out;
}

std::vector<std::string> interface_target_addresses(const config::Listener& l) {
    const std::vector<Interface> all = interfaces();
    if (find(all, l.on)) return addresses_of(l, all, {l.on});
    if (l.on == "egress") return addresses_of(l, all, egress_interfaces());
    if (l.on == "all") {
        std::vector<std::string> names;
        for (const Interface& i : all) names.push_back(i.name);
        return addresses_of(l, all, names);
    }
    return {};
}

std::string interface_name_hint(const config::Listener& l) {
    const std::vector<Interface> all = interfaces();
    if (find(all, l.on)) return {};  // an interface of that name: the caller says it has no address
    if (l.on == "egress") return egress_hint(l, all);
    if (l.on == "all")
        return std::string("no interface of this host has an ") + family_word(l) +
               "address, so the group 'all' stands for none; give one an address before posternd starts";
    return bsd_name_hint(l.on, all);
}

}  // namespace postern::smtpd
