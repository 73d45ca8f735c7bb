package yamlx

import (
	"errors"

	"gopkg.in/yaml.v3"
)

// List is a YAML sequence of configuration items that decodes every item in
// its own slot. yaml.v3 drops an item whose decoding fails, which shifts the
// index of every later item; validation messages would then name the wrong
// "probes[3]". Use List for every list of items that have their own
// UnmarshalYAML (defaults) or fields that can fail to decode.
type List[T any] []T

// UnmarshalYAML implements yaml.Unmarshaler: every item is decoded, the
// ones that fail keep what did decode, and the type errors of all items are
// returned together.
func (l *List[T]) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.SequenceNode {
		if node.Tag == "!!null" {
			*l = nil
			return nil
		}
		return Fail(node, "expected a list, one \"- name: ...\" entry per item")
	}
	out := make(List[T], len(node.Content))
	var errs []string
	for i, n := range node.Content {
		if err := n.Decode(&out[i]); err != nil {
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				return err
			}
			errs = append(errs, te.Errors...)
		}
	}
	*l = out
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}
