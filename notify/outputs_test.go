package notify

import (
	"reflect"
	"slices"
	"testing"
)

// TestEveryOutputListIsRegistered guards the registration by field: a list
// in Config whose element does not implement outputConfig would be decoded
// and then silently never validated nor built.
func TestEveryOutputListIsRegistered(t *testing.T) {
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		sf := typ.Field(i)
		if sf.Type.Kind() != reflect.Slice {
			continue
		}
		t.Run(sf.Name, func(t *testing.T) {
			if !reflect.PointerTo(sf.Type.Elem()).Implements(outputConfigType) {
				t.Errorf("Config.%s holds %s, which does not implement outputConfig (name, validate, build): write them beside the output's code", sf.Name, sf.Type.Elem())
			}
		})
	}
}

// TestOutputConfigsOrderAndPaths checks that outputs come kind by kind in
// the order of Config's fields, each with its YAML path.
func TestOutputConfigsOrderAndPaths(t *testing.T) {
	c := DefaultConfig()
	c.Files = append(c.Files, FileConfig{Path: "-"})
	c.Webhooks = append(c.Webhooks, WebhookConfig{Name: "a", URL: "http://127.0.0.1/"}, WebhookConfig{URL: "http://127.0.0.1:1/x"})
	c.Alertmanagers = append(c.Alertmanagers, AlertmanagerConfig{})
	var got []string
	for _, o := range c.outputConfigs("notify") {
		got = append(got, o.path+"="+o.cfg.name())
	}
	want := []string{"notify.webhooks[0]=a", "notify.webhooks[1]=webhook:127.0.0.1:1", "notify.alertmanagers[0]=alertmanager", "notify.files[0]=stdout"}
	if !slices.Equal(got, want) {
		t.Errorf("outputConfigs = %q; want %q", got, want)
	}
}
