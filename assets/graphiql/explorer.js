// The GraphQL explorer (GraphiQL), served whole by this server so that it works with no
// network access. Requests go to this server's /api/v2/graphql; put the bearer token in the
// Headers tab as {"Authorization": "Bearer <token>"}.
(function () {
  var endpoint = window.location.pathname.replace(/\/+$/, '');
  var fetcher = GraphiQL.createFetcher({ url: endpoint });
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      defaultHeaders: '{"Authorization": "Bearer <token from /api/v2/spp/oauth/token>"}',
      defaultQuery:
        '# Put your token in Headers below, then run this query.\n' +
        '{\n  individuals(first: 5) {\n    totalCount\n    edges { node { identifier { system value } name { family given } birthDate } }\n  }\n}\n',
    })
  );
})();
