{#- Each user's latest history at the end of ds: the recall's batch user embedding is computed from it, and the
    near-real-time consumer starts from it. -#}

with

interactions as (

    select * from {{ ref('int_recall_interactions') }}

),

final as (

    select
        user_id,
        ts as last_ts,
        ds as last_ds,
        recent_items as history_items,
        {{ edgerec.list_length('recent_items') }} as history_length

    from interactions
    where recency = 1

)

select * from final
