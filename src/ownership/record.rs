//! Recording who owns the ids Dify hands out (response step, `response_body_filter`, and `logging`):
//! task and message ids of completions (as soon as a stream shows them, or at the end of a blocking
//! body), annotation ids from creations, and forgetting deleted annotations.

use super::{Kind, Owner, Ownership};
use crate::admit::Caller;
use crate::admit::route::{Endpoint, Route};
use std::sync::Arc;

/// The owner record for ids handed out to `caller`.
pub fn owner_of(caller: &Caller) -> Arc<Owner> {
    Arc::new(Owner {
        tenant: caller.tenant.id.clone(),
        app: caller.app.name.clone(),
        user: caller.dify_user.clone(),
    })
}

impl Ownership {
    /// Records the ids a completion handed out to `caller`: task and message.
    pub fn record_completion(&self, caller: &Caller, task: Option<&str>, message: Option<&str>) {
        let owner = owner_of(caller);
        if let Some(t) = task {
            self.record(Kind::Task, t, owner.clone());
        }
        if let Some(m) = message {
            self.record(Kind::Message, m, owner);
        }
    }

    /// Records an annotation `caller` created.
    pub fn record_annotation(&self, caller: &Caller, id: &str) {
        self.record(Kind::Annotation, id, owner_of(caller));
    }

    /// Records an annotation-reply job `caller` started.
    pub fn record_job(&self, caller: &Caller, id: &str) {
        self.record(Kind::Job, id, owner_of(caller));
    }

    /// Forgets an annotation Dify deleted (`logging`, once the final status is known).
    pub async fn forget_deleted(&self, route: &Route, status: u16) {
        if (route.endpoint, status) == (Endpoint::AnnotationDelete, 204)
            && let Some(id) = &route.id
        {
            self.forget(Kind::Annotation, id).await;
        }
    }
}
