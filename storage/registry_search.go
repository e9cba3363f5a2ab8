package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// SearchResult is one repository found by Search, in docker's terms.
type SearchResult struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	StarCount   int    `json:"star_count"`
	IsOfficial  bool   `json:"is_official"`
	IsAutomated bool   `json:"is_automated"`
}

// SearchOptions controls Search.
type SearchOptions struct {
	Registry RegistryOptions
	Limit    int // 0: 25
}

// Search looks for repositories matching term. A term that starts with a
// registry ("127.0.0.1:5000/foo", "quay.io/bar") asks that registry;
// otherwise the configured search registries are asked (docker.io by
// default). A registry's /v1/search endpoint is used where it has one;
// else its /v2/_catalog is listed and filtered by the term.
func Search(ctx context.Context, term string, o SearchOptions) ([]SearchResult, error) {
	if o.Limit <= 0 {
		o.Limit = 25
	}
	if o.Limit > 100 {
		return nil, errors.New("limit must be between 1 and 100")
	}
	registries, query := splitSearchTerm(term, o.Registry.config().Search)
	var results []SearchResult
	var firstErr error
	for _, registry := range registries {
		found, err := searchRegistry(ctx, registry, query, o)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		results = append(results, found...)
	}
	if len(results) == 0 && firstErr != nil {
		return nil, firstErr
	}
	if len(results) > o.Limit {
		results = results[:o.Limit]
	}
	return results, nil
}

// splitSearchTerm separates a registry from the search term.
func splitSearchTerm(term string, search []string) ([]string, string) {
	if first, rest, ok := strings.Cut(term, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return []string{canonicalRegistry(first)}, rest
	}
	if len(search) == 0 {
		search = []string{dockerHub}
	}
	return search, term
}

func searchRegistry(ctx context.Context, registry, query string, o SearchOptions) ([]SearchResult, error) {
	reg, err := name.NewRegistry(registry, o.Registry.nameOptions(registry)...)
	if err != nil {
		return nil, fmt.Errorf("invalid registry %q: %w", registry, err)
	}
	results, err := searchV1(ctx, reg, query, o)
	if err == nil {
		return results, nil
	}
	if !errors.Is(err, errNoSearchEndpoint) {
		return nil, err
	}
	return searchCatalog(ctx, reg, query, o)
}

var errNoSearchEndpoint = errors.New("no search endpoint")

// searchV1 uses docker's search API (docker hub and some others).
func searchV1(ctx context.Context, reg name.Registry, query string, o SearchOptions) ([]SearchResult, error) {
	host := reg.RegistryStr()
	if canonicalRegistry(host) == dockerHub {
		host = "index.docker.io"
	}
	u := reg.Scheme() + "://" + host + "/v1/search?q=" + url.QueryEscape(query) + "&n=" + strconv.Itoa(o.Limit)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: o.Registry.baseTransport()}).Do(req)
	if err != nil {
		if reg.Scheme() == "http" {
			return nil, errNoSearchEndpoint // the catalog will report a connection problem
		}
		return nil, registryErrorf("searching %s: %s", reg.RegistryStr(), oneLineError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil, errNoSearchEndpoint
	}
	var body struct {
		Results []SearchResult `json:"results"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxMetadataSize)).Decode(&body); err != nil {
		return nil, errNoSearchEndpoint
	}
	if canonicalRegistry(reg.RegistryStr()) != dockerHub {
		for i := range body.Results {
			body.Results[i].Name = reg.RegistryStr() + "/" + body.Results[i].Name
		}
	}
	return body.Results, nil
}

// searchCatalog lists the registry's catalog and keeps the repositories
// whose name contains the query.
func searchCatalog(ctx context.Context, reg name.Registry, query string, o SearchOptions) ([]SearchResult, error) {
	repos, err := remote.Catalog(ctx, reg, o.Registry.remoteOptions(ctx)...)
	if err != nil {
		return nil, registryErrorf("searching %s: %s", reg.RegistryStr(), oneLineError(err))
	}
	sort.Strings(repos)
	query = strings.ToLower(query)
	var results []SearchResult
	for _, repo := range repos {
		if query != "" && !strings.Contains(strings.ToLower(repo), query) {
			continue
		}
		results = append(results, SearchResult{Name: reg.RegistryStr() + "/" + repo})
		if len(results) >= o.Limit {
			break
		}
	}
	return results, nil
}
