// The GraphQL explorer (GraphiQL), served whole by this server so that it works with no
// network access. Queries go to this server's /api/v2/graphql; subscriptions to its WebSocket
// at /api/v2/graphql/ws (graphql-transport-ws, with the graphql-ws client GraphiQL bundles),
// whose connection_init carries the Headers tab: put the bearer token there as
// {"Authorization": "Bearer <token>"} and both work.
(function () {
  var endpoint = window.location.pathname.replace(/\/+$/, '');
  var scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  var fetcher = GraphiQL.createFetcher({
    url: endpoint,
    subscriptionUrl: scheme + '//' + window.location.host + endpoint + '/ws',
  });
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      defaultHeaders: '{"Authorization": "Bearer <token from /api/v2/spp/oauth/token>"}',
      defaultQuery:
        '# Put your token in Headers below, then run this query.\n' +
        '{\n  individuals(first: 5) {\n    totalCount\n    edges { node { identifier { system value } name { family given } birthDate } }\n  }\n}\n\n' +
        '# Live events arrive in the results pane as they commit:\n' +
        '# subscription { events { cursor resourceType externalId eventType changedFields } }\n',
    })
  );
})();
