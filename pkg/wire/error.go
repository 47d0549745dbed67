package wire

import (
	"errors"
	"fmt"
	"strconv"
)

// Error codes, HTTP-like; docs/bus.md lists when each is answered.
const (
	CodeBadRequest  = 400
	CodeDenied      = 403
	CodeNotFound    = 404
	CodeTimeout     = 408
	CodeConflict    = 409
	CodeTooLarge    = 413
	CodeInternal    = 500
	CodeUnavailable = 503
)

// Error is an error that crosses the bus: a stable code and a lowercase message
// that says what was wrong and what to do.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Message) }

// Errorf builds an *Error with a formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorBody is the body of an error reply, so a reader without headers still
// sees what went wrong.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// CodeOf returns err's code: the code of a wrapped *Error, else 500.
func CodeOf(err error) int {
	var we *Error
	if errors.As(err, &we) {
		return we.Code
	}
	return CodeInternal
}

// ParseCode reads a Nats-Service-Error-Code header value; anything unreadable is 500.
func ParseCode(s string) int {
	c, err := strconv.Atoi(s)
	if err != nil || c < 100 || c > 599 {
		return CodeInternal
	}
	return c
}

// Message is err's message without its code, for people.
func Message(err error) string {
	var we *Error
	if errors.As(err, &we) {
		return we.Message
	}
	return err.Error()
}
