/* list.h: intrusive doubly linked list (libuv queue.h style). A node embedded in a struct links
 * it into one list; list_entry() gets the struct back. Not thread-safe. */
#ifndef CINDER_LIST_H
#define CINDER_LIST_H

#include <stddef.h>
#include <stdbool.h>

struct list_node {
    struct list_node *prev, *next;
};

#define list_entry(node, type, member) ((type *)(void *)((char *)(node)-offsetof(type, member)))

static inline void list_init(struct list_node *head)
{
    head->prev = head->next = head;
}

static inline bool list_empty(const struct list_node *head)
{
    return head->next == head;
}

static inline void list_insert_after(struct list_node *pos, struct list_node *n)
{
    n->prev = pos;
    n->next = pos->next;
    pos->next->prev = n;
    pos->next = n;
}

static inline void list_push_back(struct list_node *head, struct list_node *n)
{
    list_insert_after(head->prev, n);
}

static inline void list_push_front(struct list_node *head, struct list_node *n)
{
    list_insert_after(head, n);
}

static inline void list_remove(struct list_node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#define list_for_each(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)
#define list_for_each_safe(pos, tmp, head)                                                         \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                               \
         (pos) = (tmp), (tmp) = (pos)->next)

#endif
