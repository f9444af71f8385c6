//! Names: broker URLs, table identifiers and the MQTT topic a bus event goes to.

use crate::Error;

/// `mqtt://host:port` (or `tcp://`, or a bare `host:port`) as host and port; 1883 when
/// the port is left out.
pub(crate) fn broker_address(url: &str) -> Result<(String, u16), Error> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(Error::InvalidUrl(url.to_owned()));
    }
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => port
            .parse()
            .map(|p| (host.to_owned(), p))
            .map_err(|_| Error::InvalidUrl(url.to_owned())),
        Some(_) => Err(Error::InvalidUrl(url.to_owned())),
        None => Ok((rest.to_owned(), 1883)),
    }
}

/// Whether `name` is a plain table name (it becomes a path segment of the write).
pub(crate) fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The MQTT topic of a bus event: `prefix/` then the bus topic with `.` as `/`
/// (`table.orders.changed` → `magmobo/table/orders/changed`).
pub fn topic_for_event(prefix: &str, bus_topic: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    let path = bus_topic.replace('.', "/");
    if prefix.is_empty() {
        path
    } else {
        format!("{prefix}/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_or_say_how_to_write_them() {
        assert_eq!(
            broker_address("mqtt://127.0.0.1:1883").unwrap(),
            ("127.0.0.1".into(), 1883)
        );
        assert_eq!(
            broker_address("tcp://broker").unwrap(),
            ("broker".into(), 1883)
        );
        assert_eq!(
            broker_address("broker:1884").unwrap(),
            ("broker".into(), 1884)
        );
        for bad in [
            "",
            "mqtt://",
            "mqtt://h:x",
            "mqtt://:1883",
            "mqtt://u@h",
            "http://h/x",
        ] {
            let e = broker_address(bad).unwrap_err().to_string();
            assert!(e.contains("mqtt://host:port"), "{bad}: {e}");
        }
    }

    #[test]
    fn bus_topics_map_to_mqtt_topics() {
        assert_eq!(
            topic_for_event("magmobo", "table.orders.changed"),
            "magmobo/table/orders/changed"
        );
        assert_eq!(topic_for_event("a/b/", "x.y"), "a/b/x/y");
        assert_eq!(topic_for_event("", "x.y"), "x/y");
    }

    #[test]
    fn table_names_are_plain() {
        assert!(is_identifier("readings_2"));
        assert!(!is_identifier("a/b"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("x?y=1"));
    }
}
