// Declared for the RAM slot, but only the lifecycle trait is implemented.
#[derive(magmobo::Component)]
#[component(slot = "ram")]
struct NotACache;

impl magmobo::Component for NotACache {}

fn main() {}
