#[derive(magmobo::Component)]
#[component(slot = 3, version = 1.2)]
struct Moka;

#[derive(magmobo::Extension)]
#[extension(capabilities(storage.read), required = "yes")]
struct Gate;

fn main() {}
