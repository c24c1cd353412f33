"""The API's routes, one module per area of the API document."""
