"""The tests (`make test`): real parts wherever one can run here; fakes (fakes/) only for paid APIs."""
