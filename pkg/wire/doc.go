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
//
// Invariants of decoding ([Decode]): a request body over [MaxRequestBytes] is
// refused before it is read; every length a msgpack body declares is checked
// against the bytes present before anything is allocated ([CheckMsgpack]), so
// decoding allocates at most linearly in the body; a request's fields are
// validated in one place (validate.go), each failure a 400 naming the field.
// Replies are bounded by the bus's max payload, not the request limit
// ([DecodeLimit]), and output of any size travels in chunks (run.go).
package wire
