//! The root query (CONTRACT §7): one resource by its identifier, and the connections.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Context, Object};
use axum::http::StatusCode;
use openspp_aggregates::{Group, Individual, Program, ProgramMembership};

use crate::auth::Action;
use crate::graphql::connections::{
    search, GroupFilter, IndividualFilter, MembershipFilter, ProgramFilter,
};
use crate::graphql::context::{call, gql, open};
use crate::graphql::nodes::{render_granted, Node};
use crate::graphql::objects::{
    GroupConnection, GroupObject, IndividualConnection, IndividualObject, MembershipConnection,
    ProgramConnection, ProgramMembershipObject, ProgramObject,
};
use crate::graphql::statistics::{self, Dimension, Statistics, StatisticsFilter, Target};
use crate::resource::Resource;

pub struct Query;

/// The resource `identifier` (`system|value`) names, as REST's single read finds it: `null`
/// where it does not exist or the caller may not see it (REST's one 404).
async fn one<R: Resource>(
    ctx: &Context<'_>,
    identifier: &str,
) -> async_graphql::Result<Option<Node<R>>> {
    let call = call(ctx);
    open(call, R::SCOPE, Action::Read)?;
    let located = match R::locate(call, identifier).await {
        Ok(located) => located,
        Err(error) if error.status == StatusCode::NOT_FOUND => return Ok(None),
        Err(error) => return Err(gql(error)),
    };
    let snapshot = match located.current {
        Some(snapshot) => snapshot,
        None => match R::current(call, &located.stream).await.map_err(gql)? {
            Some(snapshot) => snapshot,
            None => return Ok(None),
        },
    };
    let grants = HashMap::from([(located.stream, located.grant)]);
    let mut nodes = render_granted(call, vec![snapshot], &grants)
        .await
        .map_err(gql)?;
    Ok(nodes.pop())
}

#[Object]
impl Query {
    /// One individual by identifier (`system|value`).
    async fn individual(
        &self,
        ctx: &Context<'_>,
        identifier: String,
    ) -> async_graphql::Result<Option<IndividualObject>> {
        Ok(one::<Individual>(ctx, &identifier)
            .await?
            .map(|n| IndividualObject(Arc::new(n))))
    }

    /// One group by identifier (`system|value`).
    async fn group(
        &self,
        ctx: &Context<'_>,
        identifier: String,
    ) -> async_graphql::Result<Option<GroupObject>> {
        Ok(one::<Group>(ctx, &identifier)
            .await?
            .map(|n| GroupObject(Arc::new(n))))
    }

    /// One program by identifier (`system|value`).
    async fn program(
        &self,
        ctx: &Context<'_>,
        identifier: String,
    ) -> async_graphql::Result<Option<ProgramObject>> {
        Ok(one::<Program>(ctx, &identifier)
            .await?
            .map(|n| ProgramObject(Arc::new(n))))
    }

    /// One program membership by identifier (`system|value`).
    async fn program_membership(
        &self,
        ctx: &Context<'_>,
        identifier: String,
    ) -> async_graphql::Result<Option<ProgramMembershipObject>> {
        Ok(one::<ProgramMembership>(ctx, &identifier)
            .await?
            .map(|n| ProgramMembershipObject(Arc::new(n))))
    }

    /// Individuals, filtered by `GET /Individual`'s parameters.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn individuals(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<IndividualFilter>,
    ) -> async_graphql::Result<IndividualConnection> {
        search::<Individual, _, _>(ctx, first, after, filter, IndividualObject).await
    }

    /// Groups, filtered by `GET /Group`'s parameters.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn groups(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<GroupFilter>,
    ) -> async_graphql::Result<GroupConnection> {
        search::<Group, _, _>(ctx, first, after, filter, GroupObject).await
    }

    /// Programs, filtered by `GET /Program`'s parameters.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn programs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<ProgramFilter>,
    ) -> async_graphql::Result<ProgramConnection> {
        search::<Program, _, _>(ctx, first, after, filter, ProgramObject).await
    }

    /// Counts by `dimensions` (needs `statistics:read`), small cells suppressed; `target`
    /// says which registrants (individuals unless `GROUP`).
    async fn statistics(
        &self,
        ctx: &Context<'_>,
        dimensions: Vec<Dimension>,
        filter: Option<StatisticsFilter>,
        target: Option<Target>,
    ) -> async_graphql::Result<Statistics> {
        statistics::compute(ctx, dimensions, filter, target).await
    }

    /// Program memberships, filtered by `GET /ProgramMembership`'s parameters.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn program_memberships(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<MembershipFilter>,
    ) -> async_graphql::Result<MembershipConnection> {
        search::<ProgramMembership, _, _>(ctx, first, after, filter, ProgramMembershipObject).await
    }
}
