//go:build !unix

package profile

import "os"

func ownerUID(os.FileInfo) (uint32, bool) { return 0, false }
func homeOf(uint32) string                { return "" }
