#[derive(magmobo::Component)]
#[component(slot = "ram", nmae = "Moka")]
struct Moka;

#[derive(magmobo::Extension)]
#[extension(slot = "ram")]
struct Gate;

fn main() {}
