//! Who is calling, by address: the client's address behind trusted proxies, and the
//! allow/deny lists checked against it.

use std::net::IpAddr;

use ipnet::IpNet;
use ironcrest_config::{IpFilterConfig, parse_network};

/// The client's address. Headers only count when the direct peer is a trusted proxy: then
/// the forwarding chain (`Forwarded: for=…` if present, else `X-Forwarded-For`) is read from
/// the right, past every trusted proxy, and the first other address is the client. Anything
/// unreadable there leaves the last address that could be trusted.
pub fn client_address(
    peer: IpAddr,
    forwarded: Option<&str>,
    forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return peer;
    }
    let chain: Vec<&str> = match (forwarded, forwarded_for) {
        (Some(forwarded), _) => forwarded_hops(forwarded),
        (None, Some(list)) => list.split(',').map(str::trim).collect(),
        (None, None) => return peer,
    };
    let mut client = peer;
    for hop in chain.iter().rev() {
        let Some(address) = parse_hop(hop) else {
            return client;
        };
        client = address;
        if !is_trusted(&address) {
            break;
        }
    }
    client
}

/// The `for=` values of a `Forwarded` header (RFC 7239), in order.
fn forwarded_hops(header: &str) -> Vec<&str> {
    header
        .split(',')
        .flat_map(|element| element.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("for")
                .then(|| value.trim().trim_matches('"'))
        })
        .collect()
}

/// An address as a hop names it: `1.2.3.4`, `1.2.3.4:80`, `[::1]`, `[::1]:80`, `::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok().map(canonical);
    }
    let (host, _port) = hop.rsplit_once(':')?;
    host.parse().ok().map(canonical)
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they carry.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The `gateway.ip_filter` lists, parsed.
#[derive(Debug, Default)]
pub(crate) struct IpFilter {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    clients: Vec<(String, Vec<IpNet>)>,
}

impl IpFilter {
    /// Entries that do not parse are refused by validation before this is built.
    pub(crate) fn new(config: &IpFilterConfig) -> Self {
        let nets = |blocks: &[String]| {
            blocks
                .iter()
                .filter_map(|b| parse_network(b))
                .collect::<Vec<_>>()
        };
        Self {
            allow: nets(&config.allow),
            deny: nets(&config.deny),
            clients: config
                .clients
                .iter()
                .map(|(client, blocks)| (client.clone(), nets(blocks)))
                .collect(),
        }
    }

    /// Why `address` may not call (with the token of `client`), if it may not.
    pub(crate) fn refusal(&self, address: IpAddr, client: Option<&str>) -> Option<String> {
        let within = |nets: &[IpNet]| nets.iter().any(|net| net.contains(&address));
        if within(&self.deny) || !(self.allow.is_empty() || within(&self.allow)) {
            return Some(format!("Requests from {address} are not allowed."));
        }
        let bound = self
            .clients
            .iter()
            .find(|(id, _)| Some(id.as_str()) == client)?;
        (!within(&bound.1))
            .then(|| format!("The client '{}' may not be used from {address}.", bound.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn nets(blocks: &[&str]) -> Vec<IpNet> {
        blocks.iter().map(|b| parse_network(b).unwrap()).collect()
    }

    #[test]
    fn headers_count_only_from_a_trusted_proxy() {
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        let xff = Some("203.0.113.7, 10.1.2.3");
        assert_eq!(
            client_address(ip("192.0.2.1"), None, xff, &trusted),
            ip("192.0.2.1")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), None, xff, &trusted),
            ip("203.0.113.7")
        );
        // A client's own X-Forwarded-For entries left of the first untrusted hop are ignored.
        assert_eq!(
            client_address(
                ip("127.0.0.1"),
                None,
                Some("1.1.1.1, 198.51.100.9"),
                &trusted
            ),
            ip("198.51.100.9")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), None, None, &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_address(ip("::ffff:127.0.0.1"), None, Some("garbage"), &trusted),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn forwarded_wins_and_its_forms_parse() {
        let trusted = nets(&["127.0.0.1"]);
        let forwarded = Some(r#"for=192.0.2.60;proto=http, For="[2001:db8::1]:4711""#);
        assert_eq!(
            client_address(ip("127.0.0.1"), forwarded, Some("198.51.100.1"), &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), Some("for=192.0.2.43:80"), None, &trusted),
            ip("192.0.2.43")
        );
    }

    #[test]
    fn deny_beats_allow_and_clients_are_bound_to_their_blocks() {
        let filter = IpFilter::new(&IpFilterConfig {
            allow: vec!["10.0.0.0/8".into(), "127.0.0.1".into()],
            deny: vec!["10.6.6.6".into()],
            clients: [("portal".to_string(), vec!["10.1.0.0/16".to_string()])].into(),
        });
        assert_eq!(filter.refusal(ip("10.2.3.4"), None), None);
        assert!(filter.refusal(ip("10.6.6.6"), None).is_some());
        assert!(filter.refusal(ip("192.0.2.1"), None).is_some());
        assert_eq!(filter.refusal(ip("10.1.9.9"), Some("portal")), None);
        let refused = filter.refusal(ip("10.2.3.4"), Some("portal")).unwrap();
        assert!(refused.contains("portal"), "{refused}");
        assert_eq!(filter.refusal(ip("127.0.0.1"), Some("cli")), None);
        assert_eq!(
            IpFilter::default().refusal(ip("192.0.2.1"), Some("x")),
            None
        );
    }
}
