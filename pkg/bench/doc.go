// Package bench is benchd's engine: it drives the stack the way its users
// load it — one agent or many, a steady rate, cold starts, audit floods —
// and measures latencies in HDR histograms, throughput, errors by code, and
// each daemon's memory and CPU, against a running stack or one it starts
// from ./bin as child processes.
//
// Every scenario measures its baseline in the same run (a plain exec beside
// the sandboxed one, one copy beside two), so ratios are fair on any machine.
package bench
