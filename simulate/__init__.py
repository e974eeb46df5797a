"""The simulated storefront: synthetic shoppers using the live API (``simulate.storefront``)."""
