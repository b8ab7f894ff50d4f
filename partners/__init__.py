"""Plumbing the two partner interfaces share (ocpi for eMSPs, api for the operator API's
clients): calls to partners' servers (outbound), rate limits per partner (ratelimit) and the
in-order delivery of an outbox to a partner (outbox). It knows neither interface nor the
domain: each interface supplies what is its own, and no domain app imports this package."""
