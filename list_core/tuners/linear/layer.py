"""The linear probe computes nothing per row inside the backbone: its rows read the frozen
encoder's hidden states as they are, and the head (`list_core.heads`) does the rest."""
