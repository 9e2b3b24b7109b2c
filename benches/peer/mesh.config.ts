// Composes the peer's supergraph from thingspace.openapi.json (GraphQL Mesh compose
// + the OpenAPI omnigraph). The base URL and both ThingSpace tokens stay `{env.…}`
// templates in the supergraph: Hive Gateway fills them in per request from its
// environment (benches/peer/peer.py sets TS_BASE_URL, TS_BEARER and TS_SESSION).
import { defineConfig } from '@graphql-mesh/compose-cli';
import { loadOpenAPISubgraph } from '@omnigraph/openapi';

export const composeConfig = defineConfig({
  subgraphs: [
    {
      sourceHandler: loadOpenAPISubgraph('ThingSpace', {
        source: './thingspace.openapi.json',
        endpoint: '{env.TS_BASE_URL}',
        operationHeaders: {
          Authorization: 'Bearer {env.TS_BEARER}',
          'VZ-M2M-Token': '{env.TS_SESSION}',
        },
        // A POST that only reads: a query field (cacheable), not a mutation.
        selectQueryOrMutationField: [{ type: 'query', fieldName: 'deviceDetails' }],
      }),
    },
  ],
});
