"""Release tooling: firmware bundles, SBOMs and the TUF repository they are published into."""
