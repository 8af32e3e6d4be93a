"""What every cloud composes alike: the platform composition (`composition`), the database stack it
and the local stack deploy (`database`), and the firewall matrix as every cloud's network reads it
(`firewall`). The clouds themselves are the sibling packages (`providers/<cloud>/`).
"""
