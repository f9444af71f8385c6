#[derive(serde::Serialize, serde::Deserialize, magmobo::BusEvent)]
#[bus_event(topic = "auth.*")]
struct AnyAuth;

#[derive(serde::Serialize, serde::Deserialize, magmobo::BusEvent)]
#[bus_event(topic = "auth..failed")]
struct DoubleDot;

#[derive(magmobo::Peripheral)]
#[peripheral(subscribes("table.*.changed", "table changes"))]
struct Hooks;

fn main() {}
