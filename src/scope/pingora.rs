//! The Pingora side of user scoping: the body plan chosen in `request_filter` (a body Dify would read
//! differently is refused there), and `request_body_filter`, which enforces the size cap and runs
//! each chunk through the plan.

use super::BodyState;
use super::plan::{self, BodyFacts, BodyPlan};
use crate::admit::Caller;
use crate::admit::route::Route;
use crate::respond::{self, Flow, LocalAnswer};
use bytes::Bytes;
use pingora::proxy::Session;

/// The body limits of `[server]` and `[streams]`.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// `server.max_request_body`.
    pub max_request_body: u64,
    /// `streams.max_json_body`.
    pub max_json_body: usize,
}

/// Why a body chunk stops the request.
#[derive(Debug)]
pub enum BodyRefused {
    /// Over `server.max_request_body` (413).
    TooLarge,
    /// Refused with this answer.
    Answer(LocalAnswer),
}

/// The request's one `Content-Type` (a repeated or unreadable one could be read differently by
/// Dify, and counts as none).
fn content_type(session: &Session) -> Option<&str> {
    let mut types = session
        .req_header()
        .headers
        .get_all(http::header::CONTENT_TYPE)
        .iter();
    match (types.next(), types.next()) {
        (Some(v), None) => v.to_str().ok(),
        _ => None,
    }
}

/// Chooses how the body of `route` for `caller` is handled; refusals are answered here.
pub async fn plan_body(
    session: &mut Session,
    route: &Route,
    caller: &Caller,
    state: &mut BodyState,
    request_id: &str,
) -> pingora::Result<Flow> {
    let (tenant, scope) = (&caller.tenant.id, caller.app.scope_users);
    match BodyPlan::choose(route.endpoint, content_type(session), tenant, scope) {
        Ok(plan) => {
            state.plan = plan;
            Ok(Flow::Next)
        }
        Err(refusal) => {
            respond::send(session, &LocalAnswer::from(&refusal), request_id).await?;
            Ok(Flow::Answered)
        }
    }
}

/// Runs a body read whole in `request_filter` through the plan at once; the result waits in the
/// plan, ready to replace what Pingora replays (and to go with its own `Content-Length`).
pub fn scope_whole(
    state: &mut BodyState,
    whole: Bytes,
    caller: Option<&mut Caller>,
    limits: BodyLimits,
) -> Result<Option<BodyFacts>, BodyRefused> {
    let mut body = Some(whole);
    let facts = filter_body(state, &mut body, true, caller, limits)?;
    // Counted once, here: its replays are not counted again.
    state.plan = BodyPlan::Ready(body.unwrap_or_default());
    Ok(facts)
}

/// Runs one body chunk through the plan; `body` becomes what Dify gets now. At the end of a held
/// JSON body, returns what it said (and `caller.dify_user` learns the scoped user).
pub fn filter_body(
    state: &mut BodyState,
    body: &mut Option<Bytes>,
    eos: bool,
    caller: Option<&mut Caller>,
    limits: BodyLimits,
) -> Result<Option<BodyFacts>, BodyRefused> {
    if !matches!(state.plan, BodyPlan::Ready(_)) {
        state.bytes += body.as_ref().map_or(0, |b| b.len() as u64);
    }
    if state.bytes > limits.max_request_body {
        return Err(BodyRefused::TooLarge);
    }
    let tenant = caller.as_ref().map_or("", |c| c.tenant.id.as_str());
    let facts = plan::filter(&mut state.plan, body, eos, tenant, limits.max_json_body)
        .map_err(|refusal| BodyRefused::Answer(LocalAnswer::from(&refusal)))?;
    if let (Some(f), Some(c)) = (&facts, caller) {
        c.dify_user.clone_from(&f.dify_user);
    }
    Ok(facts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::admit::route::Endpoint;

    #[test]
    fn a_body_scoped_whole_is_counted_once_however_often_it_is_replayed() {
        let limits = BodyLimits {
            max_request_body: 100,
            max_json_body: 1024,
        };
        let plan = BodyPlan::choose(
            Endpoint::CompletionMessages,
            Some("application/json"),
            "acme",
            true,
        );
        let mut state = BodyState {
            plan: plan.unwrap(),
            ..BodyState::default()
        };
        let whole = Bytes::from_static(br#"{"inputs": {}, "user": "bob"}"#);
        // (Without a caller the tenant prefix is empty; the scoping itself is tested in `json`.)
        let facts = scope_whole(&mut state, whole.clone(), None, limits).unwrap();
        assert!(facts.unwrap().dify_user.is_some_and(|u| u.ends_with(":bob")));
        assert_eq!(state.bytes, 29);
        let ready = br#"{"inputs":{},"user":":bob"}"#;
        assert_eq!(state.plan.ready_len(), Some(ready.len()));
        for _replay in 0..5 {
            let mut body = Some(whole.clone());
            filter_body(&mut state, &mut body, true, None, limits).unwrap();
            assert_eq!(body.as_deref(), Some(&ready[..]));
        }
        assert_eq!(state.bytes, 29, "for the access log and the size cap");
    }
}
