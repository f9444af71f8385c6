//! The BIOS sequence and its mirror image: boot (POST, init, mount, connect, patrol, listen),
//! shutdown in reverse order, restart, and hot plugging of extensions while running.

use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use super::context::PartContext;
use super::{ExtensionEntry, Motherboard, PartState, Phase};
use crate::bios::{
    BootReport, LineStatus, MountLine, PostCode, PostLine, RenderStyle, StepLine, render,
};
use crate::bios_micros as micros;
use crate::part::{Extension, StopMode};
use crate::slot::Slot;
use crate::{Error, Result};

/// Owner name of the routes the board itself mounts (`/health`).
pub(crate) const BOARD_OWNER: &str = "board";

impl Motherboard {
    /// Boots the board: POST, component init, extensions, peripherals, patrol agents, then the
    /// CPU starts listening. A required part failing stops the boot with an
    /// [`Error::Boot`] carrying the report; optional parts failing leave the board degraded.
    pub async fn boot(&self) -> Result<BootReport> {
        let _guard = self.inner.lifecycle.lock().await;
        let phase = self.current_phase();
        if !matches!(phase, Phase::Assembled | Phase::Halted) {
            return Err(Error::WrongPhase {
                action: "boot",
                phase,
            });
        }
        let started_at = Instant::now();
        let mut report = BootReport::new(&self.inner.options.name);
        let result = self.boot_sequence(&mut report).await;
        report.micros = micros(started_at.elapsed());
        self.parts_mut().last_report = Some(report.clone());
        match result {
            Ok(()) => {
                self.set_phase(Phase::Running);
                self.inner
                    .bus
                    .publish("board.ready", BOARD_OWNER, report.to_json())
                    .ok();
                Ok(report)
            }
            Err(()) => {
                tracing::debug!(failure = %report.failure_line(), "boot failed");
                self.stop_everything(StopMode::Fast).await;
                self.set_phase(Phase::Halted);
                Err(Error::Boot(Box::new(report)))
            }
        }
    }

    async fn boot_sequence(&self, report: &mut BootReport) -> std::result::Result<(), ()> {
        self.set_phase(Phase::Post);
        self.post(report).await?;

        self.set_phase(Phase::Init);
        if let Some(transport) = self.inner.transport.clone() {
            let begun = Instant::now();
            let name = format!("connect_bus ({})", transport.name());
            let attached = self
                .timed(&name, self.inner.bus.attach_transport(transport))
                .await;
            step(report, name.clone(), begun, &attached);
            if let Err(error) = attached {
                report.fail(PostCode::BusTransportFailed, "bus", error.to_string());
                return Err(());
            }
        }
        let ctx = self.context();
        for &slot in &self.inner.component_order {
            let Some(component) = self.inner.slots.component(slot) else {
                continue;
            };
            let name = format!("init_{}", slot.key());
            let begun = Instant::now();
            let outcome = self
                .timed(&name, async {
                    component.init(&ctx).await?;
                    component.start(&ctx).await
                })
                .await;
            step(report, name, begun, &outcome);
            if let Err(error) = outcome {
                let code = if matches!(error, Error::Timeout { .. }) {
                    PostCode::StepTimeout
                } else {
                    PostCode::InitFailed
                };
                report.fail(code, &component.component_info().name, error.to_string());
                // A component that failed half-way is stopped along with the others.
                self.parts_mut().started.push(slot);
                return Err(());
            }
            self.parts_mut().started.push(slot);
        }

        self.set_phase(Phase::Mount);
        let extensions: Vec<(Arc<dyn Extension>, bool)> = self
            .parts()
            .extensions
            .iter()
            .map(|e| (e.ext.clone(), e.required))
            .collect();
        for (index, (ext, required)) in extensions.into_iter().enumerate() {
            let line = self.mount_extension(index + 1, ext, required).await;
            let failed = line.status != LineStatus::Ok;
            let name = line.name.clone();
            let detail = line.detail.clone().unwrap_or_default();
            report.extensions.push(line);
            if failed {
                if required {
                    report.fail(PostCode::RequiredExtensionFailed, &name, detail);
                    return Err(());
                }
                report.note_optional_failure(&name);
            }
        }
        self.connect_peripherals(report).await?;
        self.start_patrols(report).await;

        if let Some(cpu) = self.inner.slots.cpu.clone() {
            let health_routes = super::health::routes(self);
            if let Err(error) = cpu.routes().mount(BOARD_OWNER, "/", health_routes) {
                report.fail(PostCode::ListenFailed, "board", error.to_string());
                return Err(());
            }
            let begun = Instant::now();
            let listened = self.timed("listen", cpu.listen()).await;
            step(report, "listen".to_owned(), begun, &listened);
            match listened {
                Ok(addr) => report.listening = Some(format!("http://{addr}")),
                Err(error) => {
                    report.fail(
                        PostCode::ListenFailed,
                        &cpu.component_info().name,
                        error.to_string(),
                    );
                    return Err(());
                }
            }
        }
        Ok(())
    }

    /// Runs only the power-on self-test (every slot detected and self-tested) and returns its
    /// report, without initialising, mounting or serving anything: `magflock doctor`.
    pub async fn self_test(&self) -> BootReport {
        let _guard = self.inner.lifecycle.lock().await;
        let started_at = Instant::now();
        let mut report = BootReport::new(&self.inner.options.name);
        report.post_only = true;
        let _ = self.post(&mut report).await;
        report.micros = micros(started_at.elapsed());
        report
    }

    async fn post(&self, report: &mut BootReport) -> std::result::Result<(), ()> {
        let mut failure: Option<(PostCode, String, String)> = None;
        for slot in Slot::ALL {
            let Some(component) = self.inner.slots.component(slot) else {
                let required = self.inner.options.required_slots.contains(&slot);
                report.post.push(PostLine {
                    slot,
                    status: if required {
                        LineStatus::Failed
                    } else {
                        LineStatus::Empty
                    },
                    component: None,
                    version: None,
                    detail: if required {
                        "required by the board".into()
                    } else {
                        String::new()
                    },
                    micros: 0,
                });
                if required && failure.is_none() {
                    let message = format!("the {slot} slot is empty but the board requires it");
                    failure = Some((PostCode::MissingComponent, slot.key().into(), message));
                }
                continue;
            };
            let info = component.component_info();
            let begun = Instant::now();
            let tested = self
                .timed(&format!("{slot} self-test"), component.self_test())
                .await;
            let (status, detail) = match &tested {
                Ok(detail) => (LineStatus::Ok, detail.clone()),
                Err(error) => (LineStatus::Failed, error.to_string()),
            };
            report.post.push(PostLine {
                slot,
                status,
                component: Some(info.name.to_string()),
                version: Some(info.version.to_string()),
                detail,
                micros: micros(begun.elapsed()),
            });
            if let Err(error) = tested
                && failure.is_none()
            {
                let code = if matches!(error, Error::Timeout { .. }) {
                    PostCode::StepTimeout
                } else {
                    PostCode::SelfTestFailed
                };
                failure = Some((code, info.name.to_string(), error.to_string()));
            }
        }
        match failure {
            Some((code, part, message)) => {
                report.fail(code, &part, message);
                Err(())
            }
            None => Ok(()),
        }
    }

    /// install → init → start, with capability-checked context. On failure the extension's
    /// routes are removed again so nothing half-mounted is served.
    async fn mount_extension(
        &self,
        index: usize,
        ext: Arc<dyn Extension>,
        required: bool,
    ) -> MountLine {
        let info = ext.extension_info();
        let begun = Instant::now();
        let blocked_by = {
            let parts = self.parts();
            info.depends_on
                .iter()
                .find(|dep| {
                    parts
                        .extensions
                        .iter()
                        .any(|e| e.info.name == **dep && e.state != PartState::Up)
                })
                .map(|d| d.to_string())
        };
        let outcome = match blocked_by {
            Some(dep) => Err(NotUp::Skipped(format!(
                "depends on '{dep}', which is not up"
            ))),
            None => {
                let ctx = self.part_context(&info.name, &info.all_capabilities());
                let what = format!("mounting '{}'", info.name);
                self.timed(&what, async {
                    ext.install(&ctx).await?;
                    ext.init(&ctx).await?;
                    ext.start(&ctx).await
                })
                .await
                .map_err(|e| NotUp::Failed(e.to_string()))
            }
        };
        let (status, state, detail) = match outcome {
            Ok(()) => (LineStatus::Ok, PartState::Up, ext.summary()),
            Err(NotUp::Skipped(why)) => (
                LineStatus::Skipped,
                PartState::Skipped(why.clone()),
                Some(why),
            ),
            Err(NotUp::Failed(why)) => {
                if let Some(cpu) = &self.inner.slots.cpu {
                    cpu.routes().unmount(&info.name);
                }
                tracing::warn!(extension = %info.name, error = %why, "extension failed to mount");
                (
                    LineStatus::Failed,
                    PartState::Failed(why.clone()),
                    Some(why),
                )
            }
        };
        if let Some(entry) = self
            .parts_mut()
            .extensions
            .iter_mut()
            .find(|e| e.info.name == info.name)
        {
            entry.state = state.clone();
        }
        if state == PartState::Up {
            let payload = serde_json::json!({ "name": info.name, "version": info.version });
            self.inner
                .bus
                .publish("extension.installed", BOARD_OWNER, payload)
                .ok();
        }
        MountLine {
            index,
            name: info.name.to_string(),
            title: info.title.to_string(),
            version: info.version.to_string(),
            status: if status == LineStatus::Skipped {
                LineStatus::Failed
            } else {
                status
            },
            required,
            detail,
            micros: micros(begun.elapsed()),
        }
    }

    async fn connect_peripherals(&self, report: &mut BootReport) -> std::result::Result<(), ()> {
        let count = self.parts().peripherals.len();
        for index in 0..count {
            let line = self.connect_peripheral_at(index).await;
            if line.status != LineStatus::Ok {
                if line.required {
                    let detail = line.detail.clone().unwrap_or_default();
                    report.fail(PostCode::RequiredPeripheralFailed, &line.name, detail);
                    report.peripherals.push(line);
                    return Err(());
                }
                report.note_optional_failure(&line.name);
            }
            report.peripherals.push(line);
        }
        Ok(())
    }

    /// Patrol agents start last: they may watch what extensions and peripherals publish.
    async fn start_patrols(&self, report: &mut BootReport) {
        let agents: Vec<_> = self
            .parts()
            .patrols
            .iter()
            .map(|p| p.agent.clone())
            .collect();
        let ctx = self.context();
        for (index, agent) in agents.into_iter().enumerate() {
            let begun = Instant::now();
            let name = agent.name().to_owned();
            let outcome = self
                .timed(&format!("patrol '{name}'"), agent.start(&ctx))
                .await;
            let (status, state, detail) = match outcome {
                Ok(()) => (LineStatus::Ok, PartState::Up, None),
                Err(e) => {
                    report.note_optional_failure(&name);
                    (
                        LineStatus::Failed,
                        PartState::Failed(e.to_string()),
                        Some(e.to_string()),
                    )
                }
            };
            if let Some(entry) = self.parts_mut().patrols.get_mut(index) {
                entry.state = state;
            }
            report.patrols.push(MountLine {
                index: index + 1,
                title: name.clone(),
                name,
                version: String::new(),
                status,
                required: false,
                detail,
                micros: micros(begun.elapsed()),
            });
        }
    }

    async fn connect_peripheral_at(&self, index: usize) -> MountLine {
        let (peripheral, info, required) = {
            let parts = self.parts();
            let entry = &parts.peripherals[index];
            (entry.peripheral.clone(), entry.info.clone(), entry.required)
        };
        let begun = Instant::now();
        let ctx = self.part_context(&info.name, &info.capabilities);
        let connected = self
            .timed(
                &format!("connecting '{}'", info.name),
                peripheral.connect(&ctx),
            )
            .await;
        let mut pumps = Vec::new();
        let outcome = connected.and_then(|()| {
            for pattern in &info.subscribes {
                let mut subscription = self.inner.bus.subscribe(pattern)?;
                let target = peripheral.clone();
                let name = info.name.to_string();
                pumps.push(tokio::spawn(async move {
                    while let Some(event) = subscription.recv().await {
                        if let Err(error) = target.send(event).await {
                            tracing::warn!(peripheral = %name, %error, "peripheral send failed");
                        }
                    }
                }));
            }
            Ok(())
        });
        let (status, state, detail) = match outcome {
            Ok(()) => (LineStatus::Ok, PartState::Up, None),
            Err(e) => {
                pumps.drain(..).for_each(|p| p.abort());
                (
                    LineStatus::Failed,
                    PartState::Failed(e.to_string()),
                    Some(e.to_string()),
                )
            }
        };
        if let Some(entry) = self.parts_mut().peripherals.get_mut(index) {
            entry.state = state;
            entry.pumps = pumps;
        }
        MountLine {
            index: index + 1,
            name: info.name.to_string(),
            title: info.title.to_string(),
            version: info.version.to_string(),
            status,
            required,
            detail,
            micros: micros(begun.elapsed()),
        }
    }

    /// Stops the board: the CPU stops accepting and drains in-flight requests, then patrol
    /// agents, peripherals, extensions and components stop in reverse start order.
    pub async fn shutdown(&self, mode: StopMode) -> Result<()> {
        let _guard = self.inner.lifecycle.lock().await;
        match self.current_phase() {
            Phase::Halted | Phase::Assembled => return Ok(()),
            Phase::Running => {}
            phase => {
                return Err(Error::WrongPhase {
                    action: "shut down",
                    phase,
                });
            }
        }
        self.set_phase(Phase::Draining);
        self.inner
            .bus
            .publish("board.draining", BOARD_OWNER, serde_json::json!({}))
            .ok();
        self.stop_everything(mode).await;
        self.set_phase(Phase::Halted);
        Ok(())
    }

    /// Shuts down gracefully and boots again. Parts must support being started twice.
    pub async fn restart(&self) -> Result<BootReport> {
        let deadline = self.inner.options.drain_deadline;
        self.shutdown(StopMode::Graceful { deadline }).await?;
        self.boot().await
    }

    async fn stop_everything(&self, mode: StopMode) {
        let started: Vec<Slot> = std::mem::take(&mut self.parts_mut().started);
        // The CPU goes first so in-flight requests drain while everything they use still runs.
        if let Some(cpu) = &self.inner.slots.cpu
            && started.contains(&Slot::Cpu)
        {
            log_stop("CPU", cpu.stop(mode).await);
            cpu.routes().unmount(BOARD_OWNER);
        }
        let agents: Vec<_> = self
            .parts()
            .patrols
            .iter()
            .map(|p| p.agent.clone())
            .collect();
        for agent in agents.iter().rev() {
            log_stop(agent.name(), agent.stop().await);
        }
        let peripherals: Vec<_> = {
            let mut parts = self.parts_mut();
            parts
                .peripherals
                .iter_mut()
                .rev()
                .filter(|p| p.state == PartState::Up)
                .map(|p| {
                    p.pumps.drain(..).for_each(|pump| pump.abort());
                    p.state = PartState::Pending;
                    p.peripheral.clone()
                })
                .collect()
        };
        for peripheral in peripherals {
            let name = peripheral.peripheral_info().name;
            log_stop(&name, peripheral.disconnect().await);
        }
        let extensions: Vec<(Arc<dyn Extension>, crate::part::ExtensionInfo)> = self
            .parts()
            .extensions
            .iter()
            .rev()
            .filter(|e| e.state == PartState::Up)
            .map(|e| (e.ext.clone(), e.info.clone()))
            .collect();
        for (ext, info) in extensions {
            let ctx = self.part_context(&info.name, &info.all_capabilities());
            log_stop(&info.name, ext.stop(&ctx).await);
            if let Some(cpu) = &self.inner.slots.cpu {
                cpu.routes().unmount(&info.name);
            }
        }
        for entry in self.parts_mut().extensions.iter_mut() {
            entry.state = PartState::Pending;
        }
        for slot in started.iter().rev().filter(|s| **s != Slot::Cpu) {
            if let Some(component) = self.inner.slots.component(*slot) {
                log_stop(&component.component_info().name, component.stop(mode).await);
            }
        }
        self.inner.bus.detach_transport().await;
    }

    /// Boots, prints the POST screen, serves until SIGINT or SIGTERM, then shuts down
    /// gracefully within the drain deadline.
    pub async fn run_until_signal(&self, style: RenderStyle) -> Result<()> {
        // Written, not `println!`ed: a server whose output nobody reads (a closed pipe) keeps
        // serving instead of panicking.
        match self.boot().await {
            Ok(report) => {
                let _ = writeln!(std::io::stdout().lock(), "{}", render(&report, style));
            }
            Err(Error::Boot(report)) => {
                let _ = writeln!(std::io::stderr().lock(), "{}", render(&report, style));
                return Err(Error::Boot(report));
            }
            Err(other) => return Err(other),
        }
        wait_for_signal().await;
        tracing::info!("signal received; draining");
        let deadline = self.inner.options.drain_deadline;
        self.shutdown(StopMode::Graceful { deadline }).await
    }

    /// Mounts an extension while the board runs (hot plug). In-flight requests are not
    /// disturbed: the CPU swaps its router atomically.
    pub async fn plug_extension(&self, ext: impl Extension, required: bool) -> Result<MountLine> {
        let _guard = self.inner.lifecycle.lock().await;
        let phase = self.current_phase();
        if phase != Phase::Running {
            return Err(Error::WrongPhase {
                action: "plug an extension",
                phase,
            });
        }
        let info = ext.extension_info();
        for slot in info.required_slots() {
            if !self.inner.slots.has(slot) {
                return Err(Error::MissingSlot {
                    part: info.name.to_string(),
                    slot,
                });
            }
        }
        let index = {
            let mut parts = self.parts_mut();
            if parts.extensions.iter().any(|e| e.info.name == info.name) {
                return Err(Error::DuplicateName {
                    name: info.name.to_string(),
                });
            }
            for dep in &info.depends_on {
                if !parts.extensions.iter().any(|e| e.info.name == *dep) {
                    return Err(Error::MissingDependency {
                        part: info.name.to_string(),
                        missing: dep.to_string(),
                    });
                }
            }
            let ext: Arc<dyn Extension> = Arc::new(ext);
            parts.extensions.push(ExtensionEntry {
                ext,
                info: info.clone(),
                required,
                state: PartState::Pending,
            });
            parts.extensions.len()
        };
        let ext = self.parts().extensions[index - 1].ext.clone();
        let line = self.mount_extension(index, ext, required).await;
        if line.status != LineStatus::Ok {
            self.parts_mut()
                .extensions
                .retain(|e| e.info.name != info.name);
            let reason = line.detail.clone().unwrap_or_default();
            return Err(Error::part(
                info.name.to_string(),
                format!("hot plug failed: {reason}"),
            ));
        }
        Ok(line)
    }

    /// Unmounts an extension while the board runs. Requests already inside it finish; new
    /// ones no longer reach it. With `uninstall`, its `uninstall` hook runs too.
    pub async fn unplug_extension(&self, name: &str, uninstall: bool) -> Result<()> {
        let _guard = self.inner.lifecycle.lock().await;
        let (ext, info, was_up) = {
            let parts = self.parts();
            let entry = parts
                .extensions
                .iter()
                .find(|e| e.info.name == name)
                .ok_or_else(|| Error::UnknownPart {
                    name: name.to_owned(),
                })?;
            let dependents: Vec<String> = parts
                .extensions
                .iter()
                .filter(|e| e.state == PartState::Up && e.info.depends_on.iter().any(|d| d == name))
                .map(|e| e.info.name.to_string())
                .collect();
            if !dependents.is_empty() {
                return Err(Error::InUse {
                    name: name.to_owned(),
                    dependents,
                });
            }
            (
                entry.ext.clone(),
                entry.info.clone(),
                entry.state == PartState::Up,
            )
        };
        let ctx = self.part_context(&info.name, &info.all_capabilities());
        if let Some(cpu) = &self.inner.slots.cpu {
            cpu.routes().unmount(name);
        }
        if was_up {
            log_stop(name, ext.stop(&ctx).await);
        }
        if uninstall {
            ext.uninstall(&ctx).await?;
        }
        self.parts_mut().extensions.retain(|e| e.info.name != name);
        let payload = serde_json::json!({ "name": name, "uninstalled": uninstall });
        self.inner
            .bus
            .publish("extension.removed", BOARD_OWNER, payload)
            .ok();
        Ok(())
    }

    pub(crate) fn part_context(
        &self,
        name: &str,
        capabilities: &[crate::part::Label],
    ) -> PartContext {
        PartContext::new(name, capabilities, self.context())
    }

    async fn timed<T>(&self, what: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
        let after = self.inner.options.step_timeout;
        match tokio::time::timeout(after, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                what: what.to_owned(),
                after,
            }),
        }
    }
}

/// Why an extension did not come up.
enum NotUp {
    /// A dependency is not up, so it was not attempted.
    Skipped(String),
    /// It was attempted and failed.
    Failed(String),
}

fn step<T>(report: &mut BootReport, name: String, begun: Instant, outcome: &Result<T>) {
    report.steps.push(StepLine {
        name,
        status: if outcome.is_ok() {
            LineStatus::Ok
        } else {
            LineStatus::Failed
        },
        micros: micros(begun.elapsed()),
        error: outcome.as_ref().err().map(|e| e.to_string()),
    });
}

fn log_stop(name: &str, outcome: Result<()>) {
    if let Err(error) = outcome {
        tracing::warn!(part = %name, %error, "error while stopping");
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
