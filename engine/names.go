package engine

import (
	"fmt"
	"math/rand/v2"
)

var (
	nameLeft = []string{
		"brave", "calm", "clever", "eager", "fond", "gentle", "happy", "jolly", "keen", "kind",
		"lucid", "merry", "nimble", "proud", "quiet", "quick", "sharp", "steady", "sunny", "swift",
		"tender", "upbeat", "vivid", "warm", "wise", "witty", "zealous", "bold", "crisp", "deft",
	}
	nameRight = []string{
		"albatross", "barnacle", "buoy", "capstan", "cormorant", "dinghy", "dory", "ferry", "gull",
		"harbor", "jetty", "keel", "ketch", "lighthouse", "marina", "mooring", "otter", "pelican",
		"pier", "puffin", "quay", "rudder", "schooner", "seal", "skiff", "sloop", "tern", "tide",
		"wharf", "yawl",
	}
)

// randomName returns an adjective_noun name, with a number when the
// plain names are getting crowded.
func randomName(withNumber bool) string {
	n := nameLeft[rand.IntN(len(nameLeft))] + "_" + nameRight[rand.IntN(len(nameRight))]
	if withNumber {
		n += fmt.Sprint(rand.IntN(100))
	}
	return n
}
