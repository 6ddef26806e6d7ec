"""Open311 GeoReport v2 formats (`georeport`): services, service requests, errors; JSON and XML."""
