package incident

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/tokpulse/tokpulse-agent/internal/alert"
	"github.com/tokpulse/tokpulse-agent/internal/evidence"
	"github.com/tokpulse/tokpulse-agent/internal/state"
)

// Before the tracker, an alert's life was kept twice: the rules' instances
// in the bucket "alerts" (key group/fingerprint) and delivery's records in
// "notify" → "alerts" (key fingerprint). A state file of such a version is
// migrated once, in one transaction, so that an upgrade neither resolves
// nor re-announces what was firing.
const (
	legacyRulesBucket  = "alerts"
	legacyNotifyBucket = "notify"
	legacyNotifyAlerts = "alerts"
)

// legacyInstance is the rules' record of those versions.
type legacyInstance struct {
	Fingerprint     string             `json:"fingerprint"`
	Group           string             `json:"group"`
	Alertname       string             `json:"alertname"`
	Labels          map[string]string  `json:"labels"`
	Annotations     map[string]string  `json:"annotations"`
	Value           jsonFloat          `json:"value"`
	State           alert.State        `json:"state"`
	ActiveAt        time.Time          `json:"active_at"`
	FiredAt         time.Time          `json:"fired_at"`
	ResolvedAt      time.Time          `json:"resolved_at"`
	KeepFiringSince time.Time          `json:"keep_firing_since"`
	Delivered       bool               `json:"delivered"`
	Evidence        []evidence.Section `json:"evidence"`
}

// legacyRecord is delivery's record of those versions.
type legacyRecord struct {
	ActiveAt   time.Time `json:"active_at"`
	Updates    int       `json:"updates"`
	LastSentAt time.Time `json:"last_sent_at"`
	Escalation string    `json:"escalation"`
	ResolvedAt time.Time `json:"resolved_at"`
}

// migrateLegacy turns the old layout into incidents, writes them and
// removes the old buckets. It returns the incidents, or none when there is
// nothing to migrate.
func migrateLegacy(st *state.Store, host string, logger *slog.Logger) ([]*incident, error) {
	var out []*incident
	err := st.Update(func(tx *state.Tx) error {
		rb := tx.Lookup(legacyRulesBucket)
		nb := tx.Lookup(legacyNotifyBucket, legacyNotifyAlerts)
		if rb == nil && nb == nil {
			return nil
		}
		if rb != nil {
			_ = rb.ForEach(func(k, v []byte) error {
				var li legacyInstance
				if err := json.Unmarshal(v, &li); err != nil || li.Fingerprint == "" {
					logger.Warn("Dropping a corrupt alert record of an older version", "key", string(k), "err", err)
					return nil
				}
				inc := fromLegacy(li, nb, host)
				if inc != nil {
					out = append(out, inc)
				}
				return nil
			})
		}
		ib, err := tx.Bucket(Bucket)
		if err != nil {
			return err
		}
		for _, inc := range out {
			data, err := json.Marshal(&inc.record)
			if err != nil {
				return err
			}
			if err := ib.Put([]byte(inc.key()), data); err != nil {
				return err
			}
		}
		if rb != nil {
			if err := tx.DeleteBucket(legacyRulesBucket); err != nil {
				return err
			}
		}
		if nb != nil {
			if err := tx.Lookup(legacyNotifyBucket).DeleteSub(legacyNotifyAlerts); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("migrating alert states of an older version: %w (move the state file aside to start afresh)", err)
	}
	if len(out) > 0 {
		logger.Info("Migrated the alert states of an older version to incidents", "incidents", len(out))
	}
	return out, nil
}

// fromLegacy builds the incident of li, with what delivery had sent for it
// (recs may be nil). It returns nil for an alert whose life had ended.
func fromLegacy(li legacyInstance, recs *state.TxBucket, host string) *incident {
	var rec legacyRecord
	have := false
	if recs != nil {
		if v := recs.Get([]byte(li.Fingerprint)); v != nil && json.Unmarshal(v, &rec) == nil && rec.ActiveAt.Equal(li.ActiveAt) {
			have = true
		}
	}
	if li.State == alert.StateResolved && (li.Delivered || !have) && (!have || !rec.ResolvedAt.IsZero()) {
		return nil
	}
	inc := &incident{record: record{
		IncidentID:  alert.IncidentID(host, li.Fingerprint, li.ActiveAt),
		Fingerprint: li.Fingerprint, Group: li.Group, AlertName: li.Alertname,
		Severity: alert.Severity(li.Labels["severity"]), Labels: li.Labels, Annotations: li.Annotations,
		Value: li.Value, State: li.State, ActiveAt: li.ActiveAt, FiredAt: li.FiredAt,
		ResolvedAt: li.ResolvedAt, KeepFiringSince: li.KeepFiringSince, Evidence: li.Evidence,
	}, lset: labels.FromMap(li.Labels)}
	if have {
		// The initial event was queued; so was the resolution if the
		// record says so.
		inc.Announced = true
		inc.Closed = !rec.ResolvedAt.IsZero()
		inc.Updates, inc.LastSentAt, inc.Escalation = rec.Updates, rec.LastSentAt, rec.Escalation
	}
	return inc
}
