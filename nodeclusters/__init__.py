"""The node cluster domain: catalog, clusters, nodes, actions, API keys, their services and their API."""
