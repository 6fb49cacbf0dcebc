package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pei-dev/pei/internal/api"
)

// ErrCatalogFull is a new item for a namespace whose catalog holds the
// most items it may.
var ErrCatalogFull = errors.New("catalog is full")

// PutCatalogItem adds or replaces namespace ns's item it.Name; a new item
// is refused with ErrCatalogFull when ns already has max items. It
// returns the item as stored and whether it is new.
func (s *Store) PutCatalogItem(ctx context.Context, ns string, it api.CatalogItem, by string, max int) (api.CatalogItem, bool, error) {
	ex, err := json.Marshal(it.Exclude)
	if err != nil {
		return api.CatalogItem{}, false, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return api.CatalogItem{}, false, err
	}
	defer tx.Rollback()
	var n int
	var existing int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*), COALESCE(SUM(CASE WHEN name = ? THEN 1 ELSE 0 END), 0) FROM catalog WHERE namespace = ?`), it.Name, ns).Scan(&n, &existing); err != nil {
		return api.CatalogItem{}, false, fmt.Errorf("catalog: %w", err)
	}
	created := existing == 0
	if created && n >= max {
		return api.CatalogItem{}, false, ErrCatalogFull
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO catalog (namespace, name, lower_ref, upper_ref, exclude, updated, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (namespace, name) DO UPDATE SET lower_ref = excluded.lower_ref, upper_ref = excluded.upper_ref, exclude = excluded.exclude, updated = excluded.updated, updated_by = excluded.updated_by`),
		ns, it.Name, it.Lower, it.Upper, string(ex), ms(now), by)
	if err != nil {
		return api.CatalogItem{}, false, fmt.Errorf("catalog: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return api.CatalogItem{}, false, err
	}
	it.Namespace, it.Updated, it.UpdatedBy = ns, now, by
	return it, created, nil
}

const catalogCols = `namespace, name, lower_ref, upper_ref, exclude, updated, updated_by`

func scanCatalogItem(r scanner) (api.CatalogItem, error) {
	var it api.CatalogItem
	var ex string
	var updated int64
	if err := r.Scan(&it.Namespace, &it.Name, &it.Lower, &it.Upper, &ex, &updated, &it.UpdatedBy); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return api.CatalogItem{}, ErrNotFound
		}
		return api.CatalogItem{}, err
	}
	if err := json.Unmarshal([]byte(ex), &it.Exclude); err != nil {
		return api.CatalogItem{}, fmt.Errorf("catalog item %s/%s: exclude: %w", it.Namespace, it.Name, err)
	}
	it.Updated = unix(updated)
	return it, nil
}

// CatalogItem returns namespace ns's item name.
func (s *Store) CatalogItem(ctx context.Context, ns, name string) (api.CatalogItem, error) {
	return scanCatalogItem(s.db.QueryRowContext(ctx, s.q(`SELECT `+catalogCols+` FROM catalog WHERE namespace = ? AND name = ?`), ns, name))
}

// CatalogItems lists namespace ns's items by name.
func (s *Store) CatalogItems(ctx context.Context, ns string) ([]api.CatalogItem, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+catalogCols+` FROM catalog WHERE namespace = ? ORDER BY name`), ns)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []api.CatalogItem{}
	for rows.Next() {
		it, err := scanCatalogItem(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// DeleteCatalogItem removes namespace ns's item name (ErrNotFound if it
// has none). Builds already queued keep what they resolved.
func (s *Store) DeleteCatalogItem(ctx context.Context, ns, name string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM catalog WHERE namespace = ? AND name = ?`), ns, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// BuildCatalog returns the catalog items a build was queued with.
func (s *Store) BuildCatalog(ctx context.Context, id string) ([]api.CatalogItem, error) {
	var data string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT items FROM build_catalog WHERE build_id = ?`), id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var items []api.CatalogItem
	if err := json.Unmarshal([]byte(data), &items); err != nil {
		return nil, fmt.Errorf("build %s: catalog: %w", id, err)
	}
	return items, nil
}
