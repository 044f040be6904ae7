//! Ownership checks on ids Dify looks up without regard to app or tenant (request steps 3 and 7): stop by
//! task id, annotation update/delete by annotation id, annotation-reply status by job id (path,
//! `request_filter`) and text-to-audio by message id (body, `request_body_filter`). A foreign or unknown id is answered exactly as Dify
//! answers an id it does not know, so nothing about other tenants leaks.

use super::{Kind, Ownership};
use crate::admit::Caller;
use crate::admit::route::{Endpoint, Route};
use crate::admit::snapshot::{App, Tenant};
use crate::respond::LocalAnswer;
use crate::secret::Secret;

/// The decision on a path id.
#[derive(Debug)]
pub enum Guard {
    /// Forward; for a stop, with the key its task was started with.
    Forward(Option<Secret>),
    /// Answer locally.
    Answer(LocalAnswer),
}

/// Checks the id in `route`'s path for `tenant`/`app`.
pub async fn path(route: &Route, tenant: &Tenant, app: &App, owned: &Ownership) -> Guard {
    let Some(id) = route.id.as_deref() else {
        return Guard::Forward(None);
    };
    match route.endpoint {
        Endpoint::Stop => match owned.owner(Kind::Task, id).await {
            Some(o) if o.tenant == tenant.id => {
                let key = (o.app != app.name)
                    .then(|| tenant.app(&o.app).map(|a| a.api_key.clone()))
                    .flatten();
                Guard::Forward(key)
            }
            _ => Guard::Answer(LocalAnswer::stop_success()),
        },
        Endpoint::AnnotationUpdate | Endpoint::AnnotationDelete => {
            match owned.owner(Kind::Annotation, id).await {
                Some(o) if o.is(&tenant.id, &app.name) => Guard::Forward(None),
                _ => Guard::Answer(LocalAnswer::annotation_not_found()),
            }
        }
        Endpoint::AnnotationReplyStatus => match owned.owner(Kind::Job, id).await {
            Some(o) if o.is(&tenant.id, &app.name) => Guard::Forward(None),
            _ => Guard::Answer(LocalAnswer::job_not_found()),
        },
        _ => Guard::Forward(None),
    }
}

/// Whether text-to-audio may voice `message_id` for `tenant`/`app`.
pub async fn message(message_id: &str, tenant: &str, app: &str, owned: &Ownership) -> bool {
    owned
        .owner(Kind::Message, message_id)
        .await
        .is_some_and(|o| o.is(tenant, app))
}

/// Checks the id in the path for `caller` (`request_filter`): a stop's key becomes the one its task
/// was started with; a foreign id gets the answer Dify gives an unknown one.
pub async fn guard_path(route: &Route, caller: &mut Caller, owned: &Ownership) -> Option<LocalAnswer> {
    match path(route, &caller.tenant, &caller.app, owned).await {
        Guard::Forward(key) => {
            caller.key_override = key;
            None
        }
        Guard::Answer(answer) => Some(answer),
    }
}

/// Text-to-audio may only voice messages the caller's tenant and app produced
/// (`request_body_filter`, once the body is read): Dify's `200 null` otherwise.
pub async fn guard_message(
    message_id: Option<&str>,
    caller: &Caller,
    owned: &Ownership,
) -> Option<LocalAnswer> {
    let mid = message_id?;
    let mine = message(mid, &caller.tenant.id, &caller.app.name, owned).await;
    (!mine).then(LocalAnswer::tts_unknown_message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ownership::Owner;
    use std::sync::Arc;

    fn app(name: &str) -> Arc<App> {
        Arc::new(App::new(name, Secret::new(format!("key-{name}"))))
    }

    fn owner(t: &str, a: &str) -> Arc<Owner> {
        Arc::new(Owner {
            tenant: t.into(),
            app: a.into(),
            user: None,
        })
    }

    #[tokio::test]
    async fn stops_go_only_to_own_tasks_with_the_tasks_key() {
        let o = Ownership::default();
        o.record(Kind::Task, "t-acme", owner("acme", "editor"));
        o.record(Kind::Task, "t-globex", owner("globex", "writer"));
        let acme = Tenant::new("acme", vec![app("writer"), app("editor")]);
        let stop = |id: &str| Route {
            endpoint: Endpoint::Stop,
            id: Some(id.into()),
        };
        match path(&stop("t-acme"), &acme, &acme.apps[0], &o).await {
            Guard::Forward(Some(k)) => assert_eq!(k.expose(), "key-editor"),
            g => panic!("{g:?}"),
        }
        for foreign in ["t-globex", "t-unknown"] {
            match path(&stop(foreign), &acme, &acme.apps[0], &o).await {
                Guard::Answer(a) => assert_eq!(a, LocalAnswer::stop_success()),
                g => panic!("{g:?}"),
            }
        }
    }

    #[tokio::test]
    async fn annotations_and_messages_only_of_the_same_tenant_and_app() {
        let o = Ownership::default();
        o.record(Kind::Annotation, "a1", owner("acme", "writer"));
        o.record(Kind::Message, "m1", owner("acme", "writer"));
        let acme = Tenant::new("acme", vec![app("writer"), app("editor")]);
        let upd = |id: &str| Route {
            endpoint: Endpoint::AnnotationUpdate,
            id: Some(id.into()),
        };
        assert!(matches!(
            path(&upd("a1"), &acme, &acme.apps[0], &o).await,
            Guard::Forward(None)
        ));
        assert!(matches!(
            path(&upd("a1"), &acme, &acme.apps[1], &o).await,
            Guard::Answer(_)
        ));
        assert!(matches!(
            path(&upd("a2"), &acme, &acme.apps[0], &o).await,
            Guard::Answer(_)
        ));
        assert!(message("m1", "acme", "writer", &o).await);
        assert!(!message("m1", "globex", "writer", &o).await);
        assert!(!message("m2", "acme", "writer", &o).await);
    }
}
