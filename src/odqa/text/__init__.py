"""Text analysis shared by the sparse retrievers: turning Korean text into index terms."""
