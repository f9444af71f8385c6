//! The board without sockets: build-time validation, start order, capability checks, the POST
//! report (plain and JSON) with a degraded optional part, boot failure codes, restart.

// Tests unwrap freely: a panic with the value is the clearest failure.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use magmobo::Phase;
use magmobo::bios::{LineStatus, Outcome, PostCode, RenderStyle, render};
use magmobo::prelude::*;
use magmobo_integration_tests::parts::{
    Ask, CountingPatrol, Journal, MapCache, TestExtension, TestPeripheral,
};

fn boot_failure(result: Result<magmobo::bios::BootReport>) -> magmobo::bios::BootReport {
    match result {
        Err(Error::Boot(report)) => *report,
        Err(other) => panic!("expected a boot failure, got {other}"),
        Ok(report) => panic!(
            "expected a boot failure, booted:\n{}",
            render(&report, RenderStyle::Plain)
        ),
    }
}

#[tokio::test]
async fn extensions_mount_in_dependency_order_and_stop_in_reverse() {
    let journal = Journal::default();
    let board = Motherboard::builder()
        .with(MapCache::new("MapCache", &journal))
        .with(TestExtension::new("api", &journal).depends_on("auth-ext"))
        .with(TestExtension::new("auth-ext", &journal).depends_on("store-ext"))
        .with(
            TestExtension::new("store-ext", &journal)
                .capability(caps::CACHE_READ)
                .asks(Ask::Cache),
        )
        .build()
        .unwrap();
    board.boot().await.unwrap();
    assert_eq!(board.current_phase(), Phase::Running);
    assert!(journal.position("init:MapCache") < journal.position("mount:store-ext"));
    assert!(journal.position("mount:store-ext") < journal.position("mount:auth-ext"));
    assert!(journal.position("mount:auth-ext") < journal.position("mount:api"));

    board.shutdown(StopMode::Fast).await.unwrap();
    assert_eq!(board.current_phase(), Phase::Halted);
    assert!(journal.position("stop:api") < journal.position("stop:auth-ext"));
    assert!(journal.position("stop:auth-ext") < journal.position("stop:store-ext"));
    assert!(journal.position("stop:store-ext") < journal.position("stop:MapCache"));
}

#[tokio::test]
async fn build_rejects_cycles_missing_parts_and_double_slots_naming_them() {
    let j = Journal::default();
    let err = Motherboard::builder()
        .with(TestExtension::new("a", &j).depends_on("b"))
        .with(TestExtension::new("b", &j).depends_on("a"))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::DependencyCycle { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("a -> b -> a") || text.contains("b -> a -> b"),
        "{text}"
    );

    let err = Motherboard::builder()
        .with(TestExtension::new("gate", &j).depends_on("auth"))
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("'gate' depends on 'auth'"),
        "{err}"
    );

    let err = Motherboard::builder()
        .with(TestExtension::new("gate", &j).capability(caps::STORAGE_READ))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::MissingSlot {
                slot: Slot::Storage,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("'gate' requires the Storage slot"),
        "{err}"
    );

    let err = Motherboard::builder()
        .with((MapCache::new("One", &j), MapCache::new("Two", &j)))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("already holds 'One'"), "{err}");

    let err = Motherboard::builder()
        .with((
            TestExtension::new("same", &j),
            TestExtension::new("same", &j),
        ))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateName { .. }), "{err}");
}

#[tokio::test]
async fn an_undeclared_capability_fails_that_extension_naming_both() {
    let j = Journal::default();
    let board = Motherboard::builder()
        .with(MapCache::new("MapCache", &j))
        // Asks for the cache without declaring cache.read.
        .with(TestExtension::new("sneaky", &j).asks(Ask::Cache))
        // Declares bus.subscribe only, then publishes.
        .with(
            TestExtension::new("chatty", &j)
                .capability(caps::BUS_SUBSCRIBE)
                .asks(Ask::Publish),
        )
        .with(
            TestExtension::new("honest", &j)
                .capability(caps::CACHE_READ)
                .asks(Ask::Cache),
        )
        .build()
        .unwrap();
    let report = board.boot().await.unwrap();
    let line = |name: &str| {
        report
            .extensions
            .iter()
            .find(|l| l.name == name)
            .unwrap()
            .clone()
    };
    let sneaky = line("sneaky");
    assert_eq!(sneaky.status, LineStatus::Failed);
    let why = sneaky.detail.unwrap();
    assert!(
        why.contains("'sneaky'") && why.contains("cache.read"),
        "{why}"
    );
    let chatty = line("chatty").detail.unwrap();
    assert!(
        chatty.contains("'chatty'") && chatty.contains("bus.publish"),
        "{chatty}"
    );
    assert_eq!(line("honest").status, LineStatus::Ok);
    let Outcome::Degraded { failed } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(failed, &["sneaky", "chatty"]);
}

#[tokio::test]
async fn post_screen_shows_a_degraded_optional_extension_plain_and_json() {
    let j = Journal::default();
    let board = Motherboard::builder()
        .name("TestBoard")
        .with(MapCache::new("MapCache", &j))
        .with(TestExtension::new("good", &j))
        .with(TestExtension::new("broken", &j).failing("schema v3 expected, found v2"))
        .with(TestExtension::new("after-broken", &j).depends_on("broken"))
        .with(TestPeripheral::new("hooks", &["table.*"]))
        .build()
        .unwrap();
    let report = board.boot().await.unwrap();
    let plain = render(&report, RenderStyle::Plain);
    assert!(
        !plain.contains('\x1b'),
        "plain output must have no escape codes:\n{plain}"
    );
    for expected in [
        "MagMoBo BIOS v",
        "Performing Power-On Self Test (POST)...",
        "✓ RAM detected: MapCache (in-memory map)",
        "· CPU slot empty",
        "POST complete. All components operational.",
        "→ init_ram... done (",
        "Mounting PCIe extensions...",
        "Slot 1: good v0.1.0  ✓",
        "Slot 2: broken v0.1.0  ✗ failed: broken: schema v3 expected, found v2 (optional; continuing without it)",
        "Slot 3: after-broken v0.1.0  ✗ failed: depends on 'broken', which is not up",
        "Connecting USB peripherals...",
        "Port 1: hooks v0.1.0  ✓",
        "Degraded: broken, after-broken did not come up; see above.",
        "TestBoard started.",
    ] {
        assert!(
            plain.contains(expected),
            "missing {expected:?} in:\n{plain}"
        );
    }
    let colored = render(&report, RenderStyle::Color);
    assert!(colored.contains("\x1b[32m✓\x1b[0m") && colored.contains("\x1b[31m✗\x1b[0m"));

    let json: serde_json::Value =
        serde_json::from_str(&render(&report, RenderStyle::Json)).unwrap();
    assert_eq!(json["outcome"]["state"], "degraded");
    assert_eq!(
        json["outcome"]["failed"],
        serde_json::json!(["broken", "after-broken"])
    );
    assert_eq!(json["extensions"][1]["status"], "failed");
    assert_eq!(json["extensions"][1]["required"], false);
    assert_eq!(json["post"][1]["slot"], "ram");
    assert_eq!(json["post"][1]["component"], "MapCache");

    let health = board.health().await;
    assert_eq!(health.status, HealthStatus::Degraded);
    let broken = health
        .extensions
        .iter()
        .find(|e| e.name == "broken")
        .unwrap();
    assert_eq!(broken.health.status, HealthStatus::Failed);
    assert!(
        broken
            .health
            .detail
            .as_deref()
            .unwrap()
            .contains("schema v3")
    );
}

#[tokio::test]
async fn failing_self_test_stops_the_boot_with_its_code_and_a_hint() {
    let j = Journal::default();
    let board = Motherboard::builder()
        .with(
            MapCache::new("FlakyCache", &j)
                .failing_self_test("connection refused (127.0.0.1:6379)"),
        )
        .with(TestExtension::new("never", &j))
        .build()
        .unwrap();
    let report = boot_failure(board.boot().await);
    let failure = report.failure().unwrap();
    assert_eq!(failure.code, PostCode::SelfTestFailed);
    assert_eq!(failure.code.as_str(), "MM-POST-002");
    assert_eq!(failure.part, "FlakyCache");
    let plain = render(&report, RenderStyle::Plain);
    assert!(
        plain.contains("✗ RAM failed: FlakyCache (FlakyCache: connection refused"),
        "{plain}"
    );
    assert!(plain.contains("POST failed."), "{plain}");
    assert!(plain.contains("MM-POST-002 FlakyCache:"), "{plain}");
    assert!(plain.contains("next: check that the service"), "{plain}");
    assert!(
        !journal_has(&j, "mount:never"),
        "nothing mounts after a failed POST"
    );
    assert_eq!(board.current_phase(), Phase::Halted);
}

fn journal_has(j: &Journal, entry: &str) -> bool {
    j.entries().iter().any(|e| e == entry)
}

#[tokio::test]
async fn a_required_empty_slot_or_failing_required_extension_stops_the_boot() {
    let j = Journal::default();
    let board = Motherboard::builder()
        .require(Slot::Storage)
        .with(MapCache::new("C", &j))
        .build()
        .unwrap();
    let report = boot_failure(board.boot().await);
    assert_eq!(report.failure().unwrap().code.as_str(), "MM-POST-001");
    assert!(
        render(&report, RenderStyle::Plain).contains("✗ Storage missing: required by the board")
    );

    let board = Motherboard::builder()
        .with(MapCache::new("C", &j))
        .required_extension(TestExtension::new("vital", &j).failing("bad config"))
        .build()
        .unwrap();
    let report = boot_failure(board.boot().await);
    let failure = report.failure().unwrap();
    assert_eq!(failure.code, PostCode::RequiredExtensionFailed);
    assert_eq!(failure.part, "vital");
    // Components that had started were stopped again.
    assert!(journal_has(&j, "stop:C"));
}

#[tokio::test]
async fn a_hanging_step_times_out_with_its_own_code() {
    struct Hang;
    impl ExtensionMeta for Hang {
        fn extension_info(&self) -> ExtensionInfo {
            ExtensionInfo::new("hang", "0.1.0")
        }
    }
    #[async_trait]
    impl Extension for Hang {
        async fn init(&self, _ctx: &ExtensionContext) -> Result<()> {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
    }
    let board = Motherboard::builder()
        .step_timeout(Duration::from_millis(50))
        .required_extension(Hang)
        .build()
        .unwrap();
    let report = boot_failure(board.boot().await);
    let failure = report.failure().unwrap();
    assert_eq!(failure.code, PostCode::RequiredExtensionFailed);
    assert!(
        failure.message.contains("did not finish within 50ms"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn peripherals_receive_the_events_they_subscribe_to() {
    let peripheral = TestPeripheral::new("hooks", &["table.*.changed"]);
    let inbox = peripheral.inbox();
    let board = Motherboard::builder().with(peripheral).build().unwrap();
    board.boot().await.unwrap();
    board
        .bus()
        .publish(
            "table.orders.changed",
            "test",
            serde_json::json!({ "id": 1 }),
        )
        .unwrap();
    board
        .bus()
        .publish("table.orders.read", "test", serde_json::json!({}))
        .unwrap();
    board
        .bus()
        .publish(
            "table.users.changed",
            "test",
            serde_json::json!({ "id": 2 }),
        )
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while inbox.lock().unwrap().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let topics: Vec<String> = inbox
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.topic.clone())
        .collect();
    assert_eq!(topics, ["table.orders.changed", "table.users.changed"]);
}

#[tokio::test]
async fn lifecycle_calls_in_the_wrong_phase_are_errors() {
    let board = Motherboard::builder().build().unwrap();
    let err = board
        .plug_extension(TestExtension::new("x", &Journal::default()), false)
        .await;
    assert!(matches!(err, Err(Error::WrongPhase { .. })));
    board.boot().await.unwrap();
    assert!(matches!(board.boot().await, Err(Error::WrongPhase { .. })));
    board.shutdown(StopMode::Fast).await.unwrap();
    board.shutdown(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_boots_again_without_leaking_tasks() {
    let j = Journal::default();
    let board = Motherboard::builder()
        .with(MapCache::new("C", &j))
        .with(TestExtension::new("e", &j))
        .with(TestPeripheral::new("p", &["a.*", "b.*"]))
        .build()
        .unwrap();
    board.boot().await.unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    let alive_after_first_boot = metrics.num_alive_tasks();
    for _ in 0..5 {
        board.restart().await.unwrap();
    }
    assert_eq!(board.current_phase(), Phase::Running);
    assert_eq!(j.entries().iter().filter(|e| *e == "mount:e").count(), 6);
    // Aborted tasks finish asynchronously; give them a moment.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        metrics.num_alive_tasks(),
        alive_after_first_boot,
        "restart leaked tasks"
    );
}

#[tokio::test]
async fn phase_changes_are_observable() {
    let board = Motherboard::builder().build().unwrap();
    let mut phases = board.watch_phase();
    assert_eq!(*phases.borrow_and_update(), Phase::Assembled);
    board.boot().await.unwrap();
    assert!(phases.has_changed().unwrap());
    assert_eq!(*phases.borrow_and_update(), Phase::Running);
    board.shutdown(StopMode::Fast).await.unwrap();
    assert_eq!(*phases.borrow_and_update(), Phase::Halted);
}

#[tokio::test]
async fn patrol_agents_start_last_watch_the_bus_and_show_on_the_post_screen() {
    let j = Journal::default();
    let agent = CountingPatrol::new("AuthWatch", "auth.*");
    let seen = agent.counter();
    let board = Motherboard::builder()
        .with(
            TestExtension::new("app", &j)
                .capability(caps::BUS_PUBLISH)
                .asks(Ask::Publish),
        )
        .patrol(agent)
        .build()
        .unwrap();
    let report = board.boot().await.unwrap();
    let plain = render(&report, RenderStyle::Plain);
    assert!(
        plain.contains("Initializing patrol agents...\n  ✓ AuthWatch"),
        "{plain}"
    );
    board
        .bus()
        .publish("auth.login.failed", "psu", serde_json::json!({}))
        .unwrap();
    board
        .bus()
        .publish("db.query.executed", "storage", serde_json::json!({}))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while seen.load(std::sync::atomic::Ordering::Relaxed) < 1
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 1);
    let health = board.health().await;
    assert_eq!(health.patrols[0].name, "AuthWatch");
    assert_eq!(health.patrols[0].health.status, HealthStatus::Ok);
}
