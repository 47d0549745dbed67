package bus

import (
	"fmt"
	"log/slog"
)

// logger forwards nats-server's warnings and errors to slog; its notices are
// chatter that would bury busd's own "ready" line.
type logger struct{ l *slog.Logger }

func (g *logger) Noticef(string, ...any) {}
func (g *logger) Debugf(string, ...any)  {}
func (g *logger) Tracef(string, ...any)  {}
func (g *logger) Warnf(f string, a ...any) {
	g.l.Warn("nats-server: " + fmt.Sprintf(f, a...))
}
func (g *logger) Errorf(f string, a ...any) {
	g.l.Error("nats-server: " + fmt.Sprintf(f, a...))
}
func (g *logger) Fatalf(f string, a ...any) {
	g.l.Error("nats-server fatal: " + fmt.Sprintf(f, a...))
}
