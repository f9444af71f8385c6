// The derive gives the identity; the lifecycle trait must still be implemented.
#[derive(magmobo::Extension)]
#[extension(name = "forgotten")]
struct Forgotten;

fn main() {}
