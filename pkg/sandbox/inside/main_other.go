//go:build !linux

package inside

// Main returns at once: the helper exists on Linux only (on macOS,
// pkg/sandbox runs commands under Seatbelt, without a helper).
func Main() {}
