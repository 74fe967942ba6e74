"""What a user or an address may do: rate buckets, connects, logins."""
