//! The generation worker: a spawned task producing answer events with pings, stop checks, error and TTS injection.
//!
//! It runs to completion even when the client goes away (Dify keeps generating); only a stop flag ends it early.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::TaskOutcome;
use crate::state::{Shared, StopHandle};
use crate::tts::{base64, fake_mp3};
use crate::usage::Usage;

/// Provider description used for injected model-run failures.
pub(crate) const ERROR_MESSAGE: &str = "[openai] Rate Limit Error, Error code: 429 - {'error': {'message': 'Rate limit reached for requests', 'type': 'requests', 'code': 'rate_limit_exceeded'}}";

/// One thing the worker produced, in order.
pub(crate) enum GenEvent {
    Ping,
    Message(String),
    Tts(String),
    End(Usage),
    Error,
    TtsEnd,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    pub first: Duration,
    pub interval: Duration,
    /// Zero disables pings.
    pub ping: Duration,
}

pub(crate) struct Plan {
    pub task_id: String,
    pub message_id: String,
    pub deltas: Vec<String>,
    pub prompt_tokens: u64,
    pub timing: Timing,
    pub error_after: Option<usize>,
    pub tts: bool,
}

/// Starts the worker; events arrive on the returned channel (dropping it does not stop the worker).
pub(crate) fn spawn(
    shared: Arc<Shared>,
    plan: Plan,
    stop: Arc<StopHandle>,
) -> mpsc::UnboundedReceiver<GenEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(shared, plan, Clock::new(tx, stop)));
    rx
}

/// Event sink plus the timers (ping schedule, stop wake-up) of one run.
struct Clock {
    tx: mpsc::UnboundedSender<GenEvent>,
    stop: Arc<StopHandle>,
    start: Instant,
    next_ping: Option<Instant>,
    ping: Duration,
}

impl Clock {
    fn new(tx: mpsc::UnboundedSender<GenEvent>, stop: Arc<StopHandle>) -> Self {
        Clock {
            tx,
            stop,
            start: Instant::now(),
            next_ping: None,
            ping: Duration::ZERO,
        }
    }

    fn with_ping(mut self, ping: Duration) -> Self {
        self.ping = ping;
        self.next_ping = (!ping.is_zero()).then(|| self.start + ping);
        self
    }

    fn send(&self, ev: GenEvent) {
        // The receiver may be gone (client disconnected): keep generating anyway.
        let _ = self.tx.send(ev);
    }

    /// Sleeps until `deadline`, emitting due pings; returns true as soon as the task is stopped.
    async fn wait_until(&mut self, deadline: Instant) -> bool {
        loop {
            if self.stop.is_set() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            let wake = match self.next_ping {
                Some(p) if p < deadline => p,
                _ => deadline,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = self.stop.notify.notified() => {}
            }
            self.ping_if_due();
        }
    }

    fn ping_if_due(&mut self) {
        if let Some(p) = self.next_ping
            && Instant::now() >= p
        {
            self.send(GenEvent::Ping);
            self.next_ping = Some(p + self.ping);
        }
    }
}

async fn run(shared: Arc<Shared>, plan: Plan, clock: Clock) {
    let mut clock = clock.with_ping(plan.timing.ping);
    let mut sent: Vec<String> = Vec::new();
    let outcome = generate(&shared, &plan, &mut clock, &mut sent).await;
    let usage = Usage {
        prompt_tokens: plan.prompt_tokens,
        completion_tokens: sent.len() as u64,
        latency: clock.start.elapsed().as_secs_f64(),
    };
    shared.finish_task(&plan.task_id, &plan.message_id, outcome, sent.concat());
    if outcome == TaskOutcome::Errored {
        clock.send(GenEvent::Error);
    } else {
        clock.send(GenEvent::End(usage));
    }
    if plan.tts {
        tts_tail(&clock, plan.timing.interval, outcome).await;
    }
}

/// Emits the message events; returns how the generation ended.
async fn generate(shared: &Shared, plan: &Plan, clock: &mut Clock, sent: &mut Vec<String>) -> TaskOutcome {
    if clock.wait_until(clock.start + plan.timing.first).await {
        return TaskOutcome::Stopped;
    }
    let error_at = plan.error_after.map(|e| e.min(plan.deltas.len()));
    for (i, delta) in plan.deltas.iter().enumerate() {
        if i > 0 && clock.wait_until(Instant::now() + plan.timing.interval).await {
            return TaskOutcome::Stopped;
        }
        if error_at == Some(i) {
            return TaskOutcome::Errored;
        }
        clock.send(GenEvent::Message(delta.clone()));
        sent.push(delta.clone());
        shared.task_progress(&plan.task_id, sent.len());
        if plan.tts && sent.len().is_multiple_of(4) {
            clock.send(GenEvent::Tts(audio_chunk(sent.len())));
        }
    }
    match error_at {
        Some(n) if n == plan.deltas.len() => TaskOutcome::Errored,
        _ if clock.stop.is_set() => TaskOutcome::Stopped,
        _ => TaskOutcome::Completed,
    }
}

/// Audio keeps arriving after `message_end`; `tts_message_end` is always the very last event.
async fn tts_tail(clock: &Clock, interval: Duration, outcome: TaskOutcome) {
    if outcome != TaskOutcome::Errored {
        for seq in 0..2 {
            tokio::time::sleep(interval).await;
            clock.send(GenEvent::Tts(audio_chunk(1000 + seq)));
        }
    }
    clock.send(GenEvent::TtsEnd);
}

fn audio_chunk(seq: usize) -> String {
    base64(&fake_mp3(seq, 96))
}
