// Package wire holds moat's bus contract: the subjects, headers, message types,
// error codes and the codec every part speaks.
//
// Bodies are msgpack by default. A request whose Content-Type is
// application/json, or whose body starts with '{', is read as JSON and answered in
// JSON, so the NATS CLI can drive every service by hand. Field names are
// snake_case in both encodings (msgpack reuses the json struct tags).
//
// Errors cross the bus in micro's Nats-Service-Error / Nats-Service-Error-Code
// headers with HTTP-like codes (see [Error]).
package wire
