// `#[derive(BusEvent)]`, and the derives used through `magmobo_core` directly.
use magmobo::bus::BusEvent;
use magmobo_core::PeripheralMeta;

#[derive(serde::Serialize, serde::Deserialize, magmobo::BusEvent)]
#[bus_event(topic = "auth.login.failed")]
struct LoginFailed {
    user: String,
}

#[derive(serde::Serialize, serde::Deserialize, magmobo::BusEvent)]
#[bus_event(topic = "table.public:orders.changed", crate = ::magmobo_core)]
// Generic events bound their parameters themselves (the derive cannot name serde's traits);
// `serde(bound)` keeps serde's own bound from clashing with the struct's.
#[serde(bound(deserialize = "T: serde::de::DeserializeOwned"))]
struct OrdersChanged<T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static> {
    row: T,
}

#[derive(magmobo::Peripheral)]
#[magmobo(crate = ::magmobo_core)]
#[peripheral(name = "core-only")]
struct CoreOnly;
impl magmobo_core::Peripheral for CoreOnly {}

fn main() {
    assert_eq!(LoginFailed::TOPIC, "auth.login.failed");
    assert_eq!(
        <OrdersChanged<u32> as BusEvent>::TOPIC,
        "table.public:orders.changed"
    );
    let event = LoginFailed { user: "ann".into() };
    let changed = OrdersChanged { row: 1u8 };
    assert_eq!((event.user.as_str(), changed.row), ("ann", 1));
    assert_eq!(CoreOnly.peripheral_info().name, "core-only");
}
