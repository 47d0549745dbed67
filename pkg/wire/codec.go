package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// MaxRequestBytes bounds every request body a service accepts; requests
// over it are refused with 413 before they are decoded. A run request,
// which carries its command's standard input (up to MaxStdinBytes), is
// bounded by MaxRunRequestBytes instead.
const (
	MaxRequestBytes    = 512 << 10
	MaxStdinBytes      = 4 << 20
	MaxRunRequestBytes = MaxStdinBytes + MaxRequestBytes
)

// Replies are bounded separately, by the bus: a reply may be as large as the
// bus's max payload (the client reads it from the connection), and output
// larger than that travels in chunks (see RunChunk).

// Format is a body encoding.
type Format uint8

const (
	Msgpack Format = iota
	JSON
)

// ContentType is the Content-Type header value for f.
func (f Format) ContentType() string {
	if f == JSON {
		return ContentJSON
	}
	return ContentMsgpack
}

func (f Format) String() string {
	if f == JSON {
		return "json"
	}
	return "msgpack"
}

// DetectFormat says how a body is encoded: JSON when the content type says so,
// the body starts with '{' (after white space) or is empty (a hand-typed
// `nats req SUBJ ""`), msgpack otherwise.
func DetectFormat(contentType string, body []byte) Format {
	if contentType == ContentJSON {
		return JSON
	}
	if contentType == ContentMsgpack {
		return Msgpack
	}
	if b := bytes.TrimLeft(body, " \t\r\n"); len(b) == 0 || b[0] == '{' {
		return JSON
	}
	return Msgpack
}

// Decode reads a request body into v strictly: unknown fields, trailing
// data and malformed input are 400 errors naming the problem; bodies over
// MaxRequestBytes are 413. Every length the body declares is checked
// against the bytes present before anything is allocated, and a message
// with a Validate method is validated (400 naming the field).
func Decode(f Format, body []byte, v any) error {
	return DecodeLimit(f, body, v, MaxRequestBytes)
}

// DecodeLimit is Decode with a body limit of its own: clients decode
// replies with the bus's max payload, not the request limit.
func DecodeLimit(f Format, body []byte, v any, limit int) error {
	if len(body) > limit {
		return Errorf(CodeTooLarge, "body is %d bytes; the limit is %d: send less (large inputs belong in files in the workspace)", len(body), limit)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return Errorf(CodeBadRequest, "empty request body: send a %s object", f)
	}
	if err := decode(f, body, v); err != nil {
		return Errorf(CodeBadRequest, "malformed %s body: %v", f, err)
	}
	if val, ok := v.(validator); ok {
		if err := val.Validate(); err != nil {
			return err
		}
	}
	return nil
}

func decode(f Format, body []byte, v any) error {
	if f == JSON {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return err
		}
		if _, err := dec.Token(); err != io.EOF {
			return fmt.Errorf("unexpected data after the object")
		}
		return nil
	}
	if err := CheckMsgpack(body); err != nil {
		return err
	}
	dec := msgpackDecoders.Get().(*msgpack.Decoder)
	defer msgpackDecoders.Put(dec)
	r := bytes.NewReader(body)
	dec.Reset(r)
	dec.SetCustomStructTag("json")
	dec.DisallowUnknownFields(true)
	if err := dec.Decode(v); err != nil {
		return err
	}
	if r.Len() != 0 {
		return fmt.Errorf("%d unexpected bytes after the object", r.Len())
	}
	return nil
}

// byValue turns a pointer to a struct into the struct, copied once: msgpack
// checks each omitempty field through reflect's Interface, which copies a
// field reached through a pointer (one allocation a field: 17 for an audit
// event) but not one of a value held in an interface (6 in all). A type
// that encodes itself keeps its pointer.
func byValue(v any) any {
	switch v.(type) {
	case msgpack.CustomEncoder, msgpack.Marshaler:
		return v
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() && rv.Elem().Kind() == reflect.Struct {
		return rv.Elem().Interface()
	}
	return v
}

var msgpackDecoders = sync.Pool{New: func() any { return msgpack.NewDecoder(nil) }}

// Encode writes v in format f.
func Encode(f Format, v any) ([]byte, error) {
	if f == JSON {
		return json.Marshal(v)
	}
	// Encoded into a pooled buffer, then copied out at its exact size: one
	// allocation the size of the body (most are a few hundred bytes) instead
	// of a fresh 1 KiB buffer, or a doubling series, per message.
	buf := encodeBufs.Get().(*bytes.Buffer)
	defer putEncodeBuf(buf)
	buf.Reset()
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(buf)
	enc.SetCustomStructTag("json")
	if err := enc.Encode(byValue(v)); err != nil {
		return nil, err
	}
	return bytes.Clone(buf.Bytes()), nil
}

// maxPooledEncode bounds the buffers Encode keeps for reuse: one grown by a
// rare large body (a page of audit events) is dropped, not kept alive.
const maxPooledEncode = 64 << 10

var encodeBufs = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 1024)) }}

func putEncodeBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooledEncode {
		encodeBufs.Put(b)
	}
}
