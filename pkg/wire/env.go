package wire

import (
	"regexp"
	"sync"
)

// secretVar matches variable names that carry credentials: they never reach
// a sandbox, whatever a request or a profile says, and clients drop them
// before they send an environment at all.
var secretVar = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)(^MOAT_|^NATS_|TOKEN|SECRET|PASSW|PASSPHRASE|CREDENTIAL|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|_KEY$|^AWS_|^AZURE_|^GOOGLE_APPLICATION|^GCP_|^SSH_AUTH_SOCK$|^GPG_AGENT|^KRB5|^VAULT_|^DOCKER_AUTH|^NPM_CONFIG_.*AUTH|^KUBECONFIG$)`)
})

// SecretVar reports whether an environment variable's name marks it as a
// credential that no sandbox receives.
func SecretVar(name string) bool { return secretVar().MatchString(name) }

var varName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })

// ValidVarName reports whether name can be an environment variable's name.
func ValidVarName(name string) bool { return varName().MatchString(name) }
