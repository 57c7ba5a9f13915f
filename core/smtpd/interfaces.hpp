// The host's network interfaces as `listen on` names them: one interface
// ("eth0", "lo"), OpenBSD's interface groups `egress` (the interfaces that
// hold a default route) and `all` (every interface), and what to say when a
// name copied from an OpenBSD smtpd.conf ("lo0", "em0", "vio0") is not here.
//
// The default routes are read from /proc/net/route and /proc/net/ipv6_route
// rather than asked of the kernel over rtnetlink: the files are the same
// table (the main one) as text, readable by any user in the daemon's own
// network namespace, and their parsing is a pure function that the unit
// tests drive with fixture text; a netlink dump would need a socket, a
// request and a multi-part reply parser for the same two facts. What they
// do not show is policy routing's other tables (`ip rule`): a default route
// only in such a table does not make its interface `egress`; name the
// interface then.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace postern::smtpd {

struct Interface {
    std::string name;
    // Those a listener can bind, in the kernel's order: link-local IPv6
    // addresses need a scope and are left out.
    std::vector<std::string> addresses;
};

// Every interface of this host, with or without addresses, in the kernel's order.
std::vector<Interface> interfaces();

// The interfaces a default route leaves through, in the order of the table,
// from the text of /proc/net/route (IPv4) and /proc/net/ipv6_route (IPv6).
// Routes that are down or that reject (an unreachable default on lo) do not count.
std::vector<std::string> ipv4_default_interfaces(std::string_view proc_net_route);
std::vector<std::string> ipv6_default_interfaces(std::string_view proc_net_ipv6_route);

// The `egress` group here: the interfaces of the IPv4 and IPv6 default
// routes, each once, IPv4's first.
std::vector<std::string> egress_interfaces();

// The addresses `listen on NAME` stands for when NAME is an interface or
// an interface group (an interface of that name wins over the group), in
// the family the listener asks for; empty when NAME is neither or has none.
std::vector<std::string> interface_target_addresses(const config::Listener& l);

// Why `listen on NAME` stands for no address when NAME is an interface
// group or an OpenBSD interface name, and what to write instead; "" when
// NAME is none of those (the caller then says what it says of any other
// name). start-up and `posternd -n` say the same.
std::string interface_name_hint(const config::Listener& l);

}  // namespace postern::smtpd
