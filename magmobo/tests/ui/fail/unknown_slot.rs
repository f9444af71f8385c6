#[derive(magmobo::Component)]
#[component(slot = "memory")]
struct Moka;

#[derive(magmobo::Component)]
#[component(slot = "rma")]
struct Typo;

fn main() {}
