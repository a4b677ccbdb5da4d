"""Sync: HaloPSA records into the warehouse, and the domain records derived from them."""
