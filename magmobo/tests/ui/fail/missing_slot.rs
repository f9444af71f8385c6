#[derive(magmobo::Component)]
#[component(name = "Moka")]
struct Moka;

fn main() {}
