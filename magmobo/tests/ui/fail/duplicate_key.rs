#[derive(magmobo::Component)]
#[component(slot = "ram", name = "A")]
#[component(name = "B", slot = "cpu")]
struct Twice;

fn main() {}
