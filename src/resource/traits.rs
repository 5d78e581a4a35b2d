//! What differs from one resource to the next, and the values the operations hand each other:
//! a located subject, a snapshot to render, a write to commit.

use std::collections::HashMap;
use std::future::Future;

use axum::http::StatusCode;
use cqrs_es::Aggregate;
use openspp_aggregates::{
    Access, DomainError, ExtendedResource, InlineIndex, RegistryServices, TargetType,
};
use openspp_projections::view::{self, ViewRow};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::params::Params;
use crate::api::preconditions::IfMatch;
use crate::error::ApiError;
use crate::resource::call::Call;
use crate::resource::grant::{grants_for, Grant};
use crate::store::Stored;

/// A resource as of one version: its state, which version that is, when and from where it last
/// changed. The read model's row, a past version from the log, and a command's result all take
/// this shape, so they render through one path.
pub type Snapshot<R> = ViewRow<R>;

/// A resource the API serves: an aggregate located by external identifier and rendered under what
/// the caller may see. `Self::TYPE` is the resource's name (`Individual`, `ProgramMembership`).
pub trait Resource:
    Aggregate<
        Services = RegistryServices,
        Error = DomainError,
        Command: Clone + Send + Sync,
        Event: InlineIndex,
    > + Stored
    + Clone
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The scope's resource (`individual`), which is also the consent's resource type.
    const SCOPE: &'static str;
    /// The read model holding the current version; `None` when it is folded from the log.
    const VIEW: Option<&'static str>;
    /// Whether the resource is a data subject's data, seen under consent (programs are not).
    const PERSONAL: bool = true;
    /// Whether it carries registered extension data, and as which resource; its reads then
    /// take `_extensions`.
    const EXTENDED: Option<ExtendedResource> = None;
    /// Whether its rendering shows what other streams change (a cycle's statistics, kept as its
    /// entitlements are written, and its next cycle): its `ETag` then follows the rendering,
    /// not only its version (see `answer::entity_tag`).
    const RENDERS_OTHERS: bool = false;

    type Rendered: Serialize;
    /// What rendering needs beyond the states themselves (the references of members, of a
    /// membership's program and beneficiary …), loaded once for a whole page, and limited to
    /// what the caller may see.
    type Context: Default + Send + Sync;

    /// Finds `id` (as a path names it) and what the caller may see of it; anything the caller
    /// may not see is the one not-found answer. Records the subject in the access log either way.
    fn locate(
        call: &Call,
        id: &str,
    ) -> impl Future<Output = Result<Located<Self>, ApiError>> + Send;

    /// `locate`, for a request that renders the resource as it is, or as its change leaves it
    /// (`GET`, `PUT` and `PATCH /{R}/{id}`): a resource whose context is read beside its row
    /// (`CONTEXT_BESIDE`) reads both in one statement. By default `locate`.
    fn locate_to_render(
        call: &Call,
        id: &str,
    ) -> impl Future<Output = Result<Located<Self>, ApiError>> + Send {
        Self::locate(call, id)
    }

    /// The identifier `id` stands for when the path and query name the resource by another
    /// address than its own identifier (OpenSPP names a membership by its beneficiary and
    /// `?program=`), taking the parameters that address uses; by default `id` itself.
    fn address(
        _call: &Call,
        id: &str,
        _params: &mut Params,
    ) -> impl Future<Output = Result<String, ApiError>> + Send {
        let id = id.to_owned();
        async move { Ok(id) }
    }

    /// The current version of a located stream.
    fn current(
        call: &Call,
        stream: &str,
    ) -> impl Future<Output = Result<Option<Snapshot<Self>>, ApiError>> + Send {
        async move {
            match Self::VIEW {
                Some(table) => Ok(view::get(&call.state.pool, table, stream).await?),
                None => Ok(
                    crate::resource::history::versions::<Self>(&call.state, stream)
                        .await?
                        .pop()
                        .map(|v| v.snapshot(stream)),
                ),
            }
        }
    }

    /// An expression over the row `v` of `VIEW` that a read by identifier computes in the
    /// statement that finds the row, giving (as JSON) what `context_beside` turns into the
    /// row's context: a read then takes one round trip. By default none (`context` reads it).
    ///
    /// It may read only what the resource's own commands leave as it is (other streams' links
    /// to it, as an individual's groups): a change's answer is rendered with the context
    /// located before the change (`Located::change`), not read again after the commit.
    const CONTEXT_BESIDE: Option<&'static str> = None;

    /// The context of the row `stream` from what `CONTEXT_BESIDE` computed beside it: what
    /// `context` gives a caller not bound by consent.
    fn context_beside(
        _stream: &str,
        _beside: Option<serde_json::Value>,
    ) -> Result<Self::Context, ApiError> {
        Ok(Self::Context::default())
    }

    /// What rendering `snapshots` needs besides their states; by default nothing.
    fn context(
        _call: &Call,
        _snapshots: &[&Snapshot<Self>],
    ) -> impl Future<Output = Result<Self::Context, ApiError>> + Send {
        async { Ok(Self::Context::default()) }
    }

    /// What rendering needs for a resource just created in a stream minted for it, when that
    /// is known without reading: no other stream can name a stream before it exists, so a
    /// context made only of other streams' links to it (an individual's groups) is empty.
    /// `None` (the default): read it as `context` does.
    fn created_context() -> Option<Self::Context> {
        None
    }

    /// What rendering past versions needs: by default what the current one needs. A resource
    /// whose rendering joins other streams' current data (an individual's groups) shows none of
    /// it in the past, where it would not be what a read answered then.
    fn past_context(
        call: &Call,
        latest: &Snapshot<Self>,
    ) -> impl Future<Output = Result<Self::Context, ApiError>> + Send {
        async move { Self::context(call, &[latest]).await }
    }

    fn render(call: &Call, context: &Self::Context, snapshot: &Snapshot<Self>) -> Self::Rendered;

    /// Other subjects a rendering of `snapshot` names, as `(reference, stream)` for the access
    /// log; only those `grant` lets the caller see. By default none.
    fn mentioned(
        _context: &Self::Context,
        _snapshot: &Snapshot<Self>,
        _grant: &Grant,
    ) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The identifier (`system|value`) the resource is referenced by: `Location`, the log.
    fn key(stream: &str, state: &Self) -> Option<String>;

    /// The stream whose consents decide what a caller sees of `state`: its own, or (for a
    /// membership) its beneficiary's.
    fn consent_subject<'a>(stream: &'a str, _state: &'a Self) -> &'a str {
        stream
    }

    /// What the caller may see of each of `snapshots`, by stream; one absent is not visible.
    fn grants(
        call: &Call,
        snapshots: &[&Snapshot<Self>],
    ) -> impl Future<Output = Result<HashMap<String, Grant>, ApiError>> + Send {
        async move {
            if !Self::PERSONAL {
                return Ok(snapshots
                    .iter()
                    .map(|s| (s.aggregate_id.clone(), Grant::not_personal(Self::SCOPE)))
                    .collect());
            }
            let subjects: Vec<String> = snapshots
                .iter()
                .map(|s| Self::consent_subject(&s.aggregate_id, &s.state).to_owned())
                .collect();
            let by_subject = grants_for(call, Self::SCOPE, &subjects).await?;
            Ok(snapshots
                .iter()
                .zip(&subjects)
                .filter_map(|(s, subject)| {
                    let grant = by_subject.get(subject)?;
                    Some((s.aggregate_id.clone(), grant.clone()))
                })
                .collect())
        }
    }
}

/// `{Resource}/{system}|{value}`: how the API and the access log name a resource.
pub fn reference_of<R: Resource>(stream: &str, state: &R) -> Option<String> {
    R::key(stream, state).map(|key| format!("{}/{key}", R::TYPE))
}

/// Notes in the access log that the request returned `snapshot` (when it has an identifier),
/// with its stream and what `grant` showed of it.
pub fn note_returned<R: Resource>(call: &Call, snapshot: &Snapshot<R>, grant: Option<&Grant>) {
    if let Some(key) = R::key(&snapshot.aggregate_id, &snapshot.state) {
        note_found::<R>(call, &snapshot.aggregate_id, &key, grant);
    }
}

/// Notes in the access log that the request returned the resource with identifier `key`
/// (`system|value`) in `stream`, with what `grant` showed of it: for answers made of other
/// rows than snapshots (a consent's index record).
pub fn note_found<R: Resource>(call: &Call, stream: &str, key: &str, grant: Option<&Grant>) {
    call.audit.returned(
        format!("{}/{key}", R::TYPE),
        Some(stream),
        grant.map(Grant::disclosure).as_ref(),
    );
}

/// The beneficiary (a stream, of `kind`) that a membership's or an entitlement's rendering
/// names, for the access log: when `grant` shows `beneficiary` and it has an identifier
/// (`references`, by stream).
pub fn beneficiary_mentioned(
    references: &HashMap<String, String>,
    beneficiary: &str,
    kind: TargetType,
    grant: &Grant,
) -> Vec<(String, String)> {
    references
        .get(beneficiary)
        .filter(|_| grant.allows("beneficiary"))
        .map(|key| (format!("{}/{key}", kind.resource()), beneficiary.to_owned()))
        .into_iter()
        .collect()
}

/// A subject the caller may see: its stream, what may be seen of it, the access to hand to the
/// aggregate if the caller changes it, and its current version when locating had to read it.
pub struct Located<R: Resource> {
    pub stream: String,
    pub grant: Grant,
    pub access: Access,
    /// The stream whose consent the grant comes from: the subject's own, or (for a membership)
    /// its beneficiary's.
    pub consent_subject: String,
    pub current: Option<Snapshot<R>>,
    /// The current version's context, when locating computed it beside the row
    /// (`Resource::CONTEXT_BESIDE`).
    pub context: Option<R::Context>,
}

impl<R: Resource> Located<R> {
    /// The subject's current version: the one locating read, else the read model's (which may
    /// still lag the identifier's claim, made when its event commits: then the one 404).
    pub async fn take_current(&mut self, call: &Call) -> Result<Snapshot<R>, ApiError> {
        match self.current.take() {
            Some(snapshot) => Ok(snapshot),
            None => R::current(call, &self.stream)
                .await?
                .ok_or_else(|| ApiError::not_found(R::TYPE)),
        }
    }

    /// A change of this subject: `command` is given the caller's access (the aggregate decides
    /// with it), and the write relies on the consent the grant came from. A context located
    /// with the subject renders the answer (`Resource::CONTEXT_BESIDE`: no command of the
    /// subject's own changes it).
    pub fn change(
        mut self,
        if_match: IfMatch,
        command: impl FnOnce(Access) -> R::Command,
    ) -> Write<R> {
        let known = self.context.take();
        Write {
            known,
            ..self.write(if_match, command)
        }
    }

    /// `change`, keeping the subject: for writes planned again after a lost race (see
    /// `execute_together`).
    pub fn write(&self, if_match: IfMatch, command: impl FnOnce(Access) -> R::Command) -> Write<R> {
        let consent = self
            .grant
            .consent_id()
            .map(|consent| (consent, self.consent_subject.clone()));
        Write {
            stream: self.stream.clone(),
            if_match,
            command: command(self.access.clone()),
            consent,
            status: StatusCode::OK,
            known: None,
        }
    }
}

/// A command on one stream, as an operation prepared it.
pub struct Write<R: Resource> {
    pub stream: String,
    /// The version the writer says it is changing (`If-Match`).
    pub if_match: IfMatch,
    pub command: R::Command,
    /// The consent the command relies on, and the subject (stream) it is relied on for; the
    /// store holds it in force until the events commit.
    pub consent: Option<(String, String)>,
    /// 201 for a creation, 200 for a change.
    pub status: StatusCode,
    /// What rendering the answer needs, when the writer already holds it (a new stream's
    /// `created_context`, the references a creation found on its way): nothing is read for
    /// it after the commit. `None`: read as `context` does.
    pub known: Option<R::Context>,
}
