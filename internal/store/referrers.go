package store

import (
	"context"
	"encoding/json"
)

// Referrer is a manifest whose subject field names another manifest: the
// index behind the OCI referrers API, which the registry library does not
// keep itself.
type Referrer struct {
	Repo         string
	Subject      string
	Digest       string
	MediaType    string
	ArtifactType string
	Size         int64
	Annotations  map[string]string
}

// AddReferrer records a manifest pushed with a subject.
func (s *Store) AddReferrer(ctx context.Context, r Referrer) error {
	ann := ""
	if len(r.Annotations) > 0 {
		b, err := json.Marshal(r.Annotations)
		if err != nil {
			return err
		}
		ann = string(b)
	}
	if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM referrers WHERE repo = ? AND subject = ? AND digest = ?`), r.Repo, r.Subject, r.Digest); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO referrers (repo, subject, digest, media_type, artifact_type, size, annotations) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		r.Repo, r.Subject, r.Digest, r.MediaType, r.ArtifactType, r.Size, ann)
	return err
}

// Referrers lists the manifests in repo whose subject is subject.
func (s *Store) Referrers(ctx context.Context, repo, subject string) ([]Referrer, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT repo, subject, digest, media_type, artifact_type, size, annotations FROM referrers WHERE repo = ? AND subject = ? ORDER BY digest`), repo, subject)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Referrer
	for rows.Next() {
		var r Referrer
		var ann string
		if err := rows.Scan(&r.Repo, &r.Subject, &r.Digest, &r.MediaType, &r.ArtifactType, &r.Size, &ann); err != nil {
			return nil, err
		}
		if ann != "" {
			if err := json.Unmarshal([]byte(ann), &r.Annotations); err != nil {
				return nil, err
			}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// DeleteReferrer forgets a deleted manifest.
func (s *Store) DeleteReferrer(ctx context.Context, repo, digest string) error {
	_, err := s.db.ExecContext(ctx, s.q(`DELETE FROM referrers WHERE repo = ? AND digest = ?`), repo, digest)
	return err
}
