package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// The registry's records, in bbolt. Blobs themselves are in the content
// store, once, whatever repositories have them; a repository sees a blob
// only once it was pushed or mounted there.
//
//	repos/<name>/blobs/<digest>         -> size
//	repos/<name>/manifests/<digest>     -> manifestRecord
//	repos/<name>/tags/<tag>             -> digest
//	repos/<name>/referrers/<subject>/<digest> -> descriptor (JSON)

var bRepos = []byte("repos")

var errNotFound = errors.New("not found")

type manifestRecord struct {
	MediaType    string            `json:"mediaType"`
	Size         int64             `json:"size"`
	Subject      digest.Digest     `json:"subject,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

func repoBucket(tx *bolt.Tx, name string, create bool) (*bolt.Bucket, error) {
	root := tx.Bucket(bRepos)
	if root == nil {
		if !create {
			return nil, errNotFound
		}
		var err error
		if root, err = tx.CreateBucket(bRepos); err != nil {
			return nil, err
		}
	}
	b := root.Bucket([]byte(name))
	if b != nil {
		return b, nil
	}
	if !create {
		return nil, errNotFound
	}
	b, err := root.CreateBucket([]byte(name))
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{"blobs", "manifests", "tags", "referrers"} {
		if _, err := b.CreateBucket([]byte(sub)); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func sub(tx *bolt.Tx, repo, bucket string, create bool) (*bolt.Bucket, error) {
	b, err := repoBucket(tx, repo, create)
	if err != nil {
		return nil, err
	}
	return b.Bucket([]byte(bucket)), nil
}

func linkBlob(tx *bolt.Tx, repo string, d digest.Digest, size int64) error {
	b, err := sub(tx, repo, "blobs", true)
	if err != nil {
		return err
	}
	return b.Put([]byte(d), []byte(fmt.Sprint(size)))
}

func hasBlob(tx *bolt.Tx, repo string, d digest.Digest) bool {
	b, err := sub(tx, repo, "blobs", false)
	return err == nil && b.Get([]byte(d)) != nil
}

// linkedAnywhere reports whether any repository has the blob.
func linkedAnywhere(tx *bolt.Tx, d digest.Digest) bool {
	root := tx.Bucket(bRepos)
	if root == nil {
		return false
	}
	found := false
	root.ForEach(func(name, _ []byte) error {
		if b := root.Bucket(name); b != nil && b.Bucket([]byte("blobs")).Get([]byte(d)) != nil {
			found = true
		}
		return nil
	})
	return found
}

func unlinkBlob(tx *bolt.Tx, repo string, d digest.Digest) error {
	b, err := sub(tx, repo, "blobs", false)
	if err != nil || b.Get([]byte(d)) == nil {
		return errNotFound
	}
	return b.Delete([]byte(d))
}

func putManifest(tx *bolt.Tx, repo string, d digest.Digest, rec manifestRecord, desc ocispec.Descriptor) error {
	b, err := sub(tx, repo, "manifests", true)
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(rec)
	if err := b.Put([]byte(d), raw); err != nil {
		return err
	}
	if rec.Subject == "" {
		return nil
	}
	refs, err := sub(tx, repo, "referrers", true)
	if err != nil {
		return err
	}
	s, err := refs.CreateBucketIfNotExists([]byte(rec.Subject))
	if err != nil {
		return err
	}
	rawDesc, _ := json.Marshal(desc)
	return s.Put([]byte(d), rawDesc)
}

func getManifest(tx *bolt.Tx, repo string, d digest.Digest) (manifestRecord, error) {
	var rec manifestRecord
	b, err := sub(tx, repo, "manifests", false)
	if err != nil {
		return rec, err
	}
	raw := b.Get([]byte(d))
	if raw == nil {
		return rec, errNotFound
	}
	return rec, json.Unmarshal(raw, &rec)
}

// deleteManifest removes a manifest, the tags that point at it, and its
// entry among its subject's referrers.
func deleteManifest(tx *bolt.Tx, repo string, d digest.Digest) error {
	rec, err := getManifest(tx, repo, d)
	if err != nil {
		return err
	}
	b, _ := sub(tx, repo, "manifests", false)
	if err := b.Delete([]byte(d)); err != nil {
		return err
	}
	tags, _ := sub(tx, repo, "tags", false)
	var gone [][]byte
	tags.ForEach(func(k, v []byte) error {
		if digest.Digest(v) == d {
			gone = append(gone, append([]byte(nil), k...))
		}
		return nil
	})
	for _, k := range gone {
		if err := tags.Delete(k); err != nil {
			return err
		}
	}
	if rec.Subject != "" {
		refs, _ := sub(tx, repo, "referrers", false)
		if s := refs.Bucket([]byte(rec.Subject)); s != nil {
			return s.Delete([]byte(d))
		}
	}
	return nil
}

func putTag(tx *bolt.Tx, repo, tag string, d digest.Digest) error {
	b, err := sub(tx, repo, "tags", true)
	if err != nil {
		return err
	}
	return b.Put([]byte(tag), []byte(d))
}

func getTag(tx *bolt.Tx, repo, tag string) (digest.Digest, error) {
	b, err := sub(tx, repo, "tags", false)
	if err != nil {
		return "", err
	}
	v := b.Get([]byte(tag))
	if v == nil {
		return "", errNotFound
	}
	return digest.Digest(v), nil
}

func deleteTag(tx *bolt.Tx, repo, tag string) error {
	b, err := sub(tx, repo, "tags", false)
	if err != nil || b.Get([]byte(tag)) == nil {
		return errNotFound
	}
	return b.Delete([]byte(tag))
}

// listTags returns up to n tags after last, in lexical order (n < 0: all),
// and whether more follow.
func listTags(tx *bolt.Tx, repo string, n int, last string) ([]string, bool, error) {
	b, err := sub(tx, repo, "tags", false)
	if err != nil {
		return nil, false, err
	}
	var tags []string
	b.ForEach(func(k, _ []byte) error {
		tags = append(tags, string(k))
		return nil
	})
	sort.Strings(tags)
	if last != "" {
		i := sort.SearchStrings(tags, last)
		if i < len(tags) && tags[i] == last {
			i++
		}
		tags = tags[i:]
	}
	more := false
	if n >= 0 && len(tags) > n {
		tags, more = tags[:n], true
	}
	return tags, more, nil
}

func referrers(tx *bolt.Tx, repo string, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	out := []ocispec.Descriptor{}
	refs, err := sub(tx, repo, "referrers", false)
	if err != nil {
		return out, nil
	}
	s := refs.Bucket([]byte(subject))
	if s == nil {
		return out, nil
	}
	err = s.ForEach(func(_, raw []byte) error {
		var d ocispec.Descriptor
		if err := json.Unmarshal(raw, &d); err != nil {
			return err
		}
		if artifactType == "" || d.ArtifactType == artifactType {
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// repoNames lists repositories (for the catalog).
func repoNames(tx *bolt.Tx) []string {
	var out []string
	if root := tx.Bucket(bRepos); root != nil {
		root.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	}
	sort.Strings(out)
	return out
}
