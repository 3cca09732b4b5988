"""Core of VLAScope: contracts, storage and analysis. Never imports Qt."""
