//! Criterion bench of `SqlGuard::inspect` on typical benign values and attacks; the target is
//! a median under 5 µs per value.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sentinel::SqlGuard;

const BENIGN: &[&str] = &[
    "42",
    "alice",
    "O'Brien",
    "o'brien@example.com",
    "2024-01-31T10:00:00Z",
    "eq.5",
    "I had to select between the red and the blue one and I'm glad I chose red. Don't drop it!",
    "{\"name\":\"O'Brien\",\"tags\":[\"sql\",\"union\"],\"count\":3}",
    "How do I write SELECT * FROM users WHERE name = 'O''Brien' in Postgres?",
    "https://example.com/search?q=select+union&page=2",
];

const ATTACKS: &[&str] = &[
    "1' OR '1'='1",
    "1 UNION SELECT password FROM users--",
    "1%27%20OR%20%271%27%3D%271",
    "'; waitfor delay '0:0:5'--",
    "' and extractvalue(1,concat(0x7e,version()))--",
    "1 UN/**/ION SEL/**/ECT password FROM users",
    "admin'--",
    "-1 union select group_concat(username,0x3a,password),2 from users#",
];

fn bench(c: &mut Criterion) {
    let guard = SqlGuard::new();
    c.bench_function("inspect/benign (10 values)", |b| {
        b.iter(|| {
            for v in BENIGN {
                black_box(guard.inspect(black_box(v)));
            }
        })
    });
    c.bench_function("inspect/attack (8 values)", |b| {
        b.iter(|| {
            for v in ATTACKS {
                black_box(guard.inspect(black_box(v)));
            }
        })
    });
    c.bench_function("inspect/short benign `42`", |b| {
        b.iter(|| black_box(guard.inspect(black_box("42"))))
    });
    c.bench_function("inspect/classic attack", |b| {
        b.iter(|| black_box(guard.inspect(black_box("1' OR '1'='1"))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
