// Extensions and peripherals with every key, and with defaults.
use magmobo::{ExtensionMeta, PeripheralMeta, Slot};

#[derive(magmobo::Extension)]
#[extension(
    name = "maggate",
    title = "MagGate API Generator",
    version = "0.3.0",
    capabilities("storage.read", "cpu.mount"),
    requires(storage, "cpu"),
    depends_on("other-ext"),
    required
)]
struct MagGate;
impl magmobo::Extension for MagGate {}

#[derive(magmobo::Extension)]
struct RealtimeHub(#[allow(dead_code)] u32);
impl magmobo::Extension for RealtimeHub {}

#[derive(magmobo::Peripheral)]
#[peripheral(
    name = "webhooks",
    title = "Webhooks",
    version = "2.0.0",
    subscribes("table.*.changed", "auth.login.failed"),
    capabilities("bus.publish"),
    depends_on("maggate"),
    required = false
)]
struct Webhooks {
    _url: String,
}
impl magmobo::Peripheral for Webhooks {}

#[derive(magmobo::Peripheral)]
struct MQTTBridge;
impl magmobo::Peripheral for MQTTBridge {}

fn main() {
    let info = MagGate.extension_info();
    assert_eq!(info.name, "maggate");
    assert_eq!(info.title, "MagGate API Generator");
    assert_eq!(info.version, "0.3.0");
    assert_eq!(info.capabilities, ["storage.read", "cpu.mount"]);
    assert_eq!(info.requires, [Slot::Storage, Slot::Cpu]);
    assert_eq!(info.depends_on, ["other-ext"]);

    let info = RealtimeHub(1).extension_info();
    assert_eq!(
        (info.name.as_ref(), info.title.as_ref()),
        ("realtime-hub", "realtime-hub")
    );
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));

    let info = Webhooks {
        _url: String::new(),
    }
    .peripheral_info();
    assert_eq!(info.name, "webhooks");
    assert_eq!(info.title, "Webhooks");
    assert_eq!(info.version, "2.0.0");
    assert_eq!(info.subscribes, ["table.*.changed", "auth.login.failed"]);
    assert_eq!(info.capabilities, ["bus.publish"]);
    assert_eq!(info.depends_on, ["maggate"]);

    let info = MQTTBridge.peripheral_info();
    assert_eq!(
        (info.name.as_ref(), info.title.as_ref()),
        ("mqtt-bridge", "mqtt-bridge")
    );
}
